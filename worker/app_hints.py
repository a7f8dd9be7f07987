"""What to say when `--app` names a module that cannot be found: the spelling other tools
use (``module:object``), a module missing from its package (a near miss of one that is
there), or a package not importable from where the worker was started."""

from __future__ import annotations

import difflib
import pkgutil
import sys
from pathlib import Path


def object_spec(spec: str) -> str | None:
    """For ``pkg.tasks:app`` (uvicorn's and Celery's form), the module it meant."""
    module, colon, _ = spec.partition(":")
    return module if colon and module else None


def not_found(module: str, missing: str | None) -> str:
    """A hint for `ModuleNotFoundError` of `missing` while importing `module`; empty when
    the missing module is one the app imports (its own error says it all)."""
    if not missing or not (module == missing or module.startswith(missing + ".")):
        return ""
    parent, _, leaf = missing.rpartition(".")
    if parent:
        found = sys.modules.get(parent)
        names = [m.name for m in pkgutil.iter_modules(getattr(found, "__path__", []))]
        near = difflib.get_close_matches(leaf, names, n=1)
        return f" (did you mean {parent}.{near[0]}?)" if near else ""
    where = Path.cwd()
    as_file = Path(*module.split(".")).with_suffix(".py")
    return (
        f" ({missing!r} is not importable from {where}: start the worker in the folder that "
        f"holds it, or give the file, --app path/to/{as_file})"
    )
