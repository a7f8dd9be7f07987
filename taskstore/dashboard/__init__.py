"""The web dashboard: queues, throughput, tasks and workers in a browser (the `web` extra).

`cli_command` is the ready `taskstore dashboard` click command. Starlette, Jinja2 and uvicorn are
imported only when it runs (or when `create_app` is first used), so this package imports
fine without the extra installed.
"""

from __future__ import annotations

from typing import Any

from taskstore.dashboard.command import cli_command

__all__ = ["cli_command", "create_app"]


def __getattr__(name: str) -> Any:
    # `create_app` needs Starlette: import it on first use, not with the package.
    if name == "create_app":
        from taskstore.dashboard.app import create_app

        return create_app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
