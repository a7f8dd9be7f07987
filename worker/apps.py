"""Loading the modules `--app` names, so their @task handlers register.

An app is a dotted module path or a .py file; a file is imported by its package's name.
Every error is one `InvalidInput` line that says what to do about it.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path

from taskstore.errors import InvalidInput, TaskStoreError


def module_for_file(spec: str) -> str:
    """Import name for an app given as a file path, the same from any directory.

    The name comes from the file's own package root: walk up while the folder has an
    ``__init__.py`` (``myapp/tasks.py`` in package ``myapp`` is ``myapp.tasks``; a file in
    no package is its bare module name). That root goes on sys.path.
    """
    path = Path(spec)
    if not path.is_file():
        raise InvalidInput(f"app file {spec} does not exist")
    resolved = path.resolve()
    parts = [] if resolved.name == "__init__.py" else [resolved.stem]
    folder = resolved.parent
    while (folder / "__init__.py").is_file():
        parts.insert(0, folder.name)
        folder = folder.parent
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))
    return ".".join(parts)


def _same_file(module: str, spec: str) -> None:
    """Refuse an app file that imported as some other, earlier module of the same name."""
    loaded = getattr(sys.modules.get(module), "__file__", None)
    if loaded and Path(loaded).resolve() != Path(spec).resolve():
        raise InvalidInput(f"app file {spec} imports as {module!r}, which is already {loaded}")


def _module_of(spec: str) -> tuple[str, bool]:
    """The module an --app names, and whether it was given as a file (whose package
    root, or else the working folder, goes on sys.path)."""
    from worker import app_hints

    if spec.endswith(".py") or "/" in spec:
        return module_for_file(spec), True
    if meant := app_hints.object_spec(spec):
        raise InvalidInput(f"--app takes a module, not an object in it: --app {meant}")
    if "" not in sys.path and str(Path.cwd()) not in sys.path:
        sys.path.insert(0, str(Path.cwd()))  # like `python -m`: the cwd is importable
    return spec, False


def find_app(spec: str) -> None:
    """Refuse an --app whose file or top-level package is not there, importing nothing:
    a supervisor checks before it starts workers that would each say so."""
    from worker import app_hints

    top = _module_of(spec)[0].partition(".")[0]
    if importlib.util.find_spec(top) is None:
        hint = app_hints.not_found(spec, top)
        raise InvalidInput(f"cannot import app {spec!r}: No module named {top!r}{hint}")


def load_app(spec: str) -> None:
    """Import an app module (dotted path or .py file) so its @task handlers register."""
    from worker import app_hints

    module, is_file = _module_of(spec)
    try:
        importlib.import_module(module)
    except TaskStoreError:
        raise
    except ModuleNotFoundError as exc:
        hint = app_hints.not_found(module, exc.name)
        raise InvalidInput(f"cannot import app {spec!r}: {exc}{hint}") from None
    except Exception as exc:
        raise InvalidInput(f"app {spec!r} failed to import: {type(exc).__name__}: {exc}") from None
    if is_file:
        _same_file(module, spec)
