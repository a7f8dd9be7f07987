"""docs/sql/*.sql hold the hot statements as the code compiles them: a stale file fails."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

RENDER = Path(__file__).resolve().parents[2] / "docs" / "sql" / "render.py"


def _render_module():
    spec = importlib.util.spec_from_file_location("sql_render", RENDER)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("database", ["postgres", "sqlite"])
def test_the_per_database_sql_file_matches_the_statements_the_code_runs(database: str) -> None:
    render = _render_module()
    written = (RENDER.parent / f"{database}.sql").read_text()
    assert written == render.render(database), (
        f"docs/sql/{database}.sql is stale: run `python docs/sql/render.py`"
    )
    for title in ("claim", "orphan claim", "ack", "heartbeat", "rescue", "enqueue"):
        assert f"\n-- {title}" in written
