"""`--app` that cannot be imported says what was probably meant: the module of a
``module:object`` spec, a near miss in its package, or where to start the worker."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from taskstore.errors import InvalidInput
from worker.apps import load_app


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A package `hintapp` with a `tasks` module (and one that imports a missing library),
    in a folder the test starts in."""
    package = tmp_path / "hintapp"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "tasks.py").write_text("")
    (package / "needs_lib.py").write_text("import no_such_library_here\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [str(tmp_path), *sys.path])
    yield tmp_path
    for name in [m for m in sys.modules if m.split(".")[0] == "hintapp"]:
        del sys.modules[name]


def refused(spec: str) -> str:
    with pytest.raises(InvalidInput) as info:
        load_app(spec)
    return str(info.value)


def test_a_module_colon_object_spec_is_pointed_to_its_module(project: Path) -> None:
    said = refused("hintapp.tasks:app")
    assert said == "--app takes a module, not an object in it: --app hintapp.tasks"


def test_a_misspelt_module_of_a_package_gets_the_near_miss(project: Path) -> None:
    said = refused("hintapp.taks")
    assert said.endswith("No module named 'hintapp.taks' (did you mean hintapp.tasks?)")


def test_a_package_not_importable_here_says_where_to_start(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    elsewhere = project / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    said = refused("nohintapp.tasks")
    assert f"'nohintapp' is not importable from {elsewhere}: start the worker in" in said
    assert said.endswith("or give the file, --app path/to/nohintapp/tasks.py)")


def test_a_library_the_app_imports_is_named_without_a_hint(project: Path) -> None:
    said = refused("hintapp.needs_lib")
    assert said == "cannot import app 'hintapp.needs_lib': No module named 'no_such_library_here'"
