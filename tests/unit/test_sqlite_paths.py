"""An SQLite path that cannot be opened is named before the driver tries to open it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from taskstore.backends.sqlite import SQLiteBackend
from taskstore.errors import DatabaseUnavailable
from taskstore.settings import Settings


def kwargs_for(path: Path) -> dict:
    return SQLiteBackend().engine_kwargs(Settings.from_env(f"sqlite:///{path}", env={}))


def test_a_folder_is_named_as_a_folder(tmp_path: Path) -> None:
    with pytest.raises(DatabaseUnavailable, match="it is a folder"):
        kwargs_for(tmp_path)


def test_a_file_this_user_may_not_write_is_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "x.db").touch()
    monkeypatch.setattr(os, "access", lambda path, mode: False)
    with pytest.raises(DatabaseUnavailable, match="may not read and write it"):
        kwargs_for(tmp_path / "x.db")


def test_a_folder_this_user_may_not_write_in_is_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(os, "access", lambda path, mode: False)
    with pytest.raises(DatabaseUnavailable, match=f"may not write in {tmp_path}$"):
        kwargs_for(tmp_path / "x.db")


def test_a_new_file_in_a_new_folder_is_allowed_and_nothing_is_made_yet(tmp_path: Path) -> None:
    assert "connect_args" in kwargs_for(tmp_path / "new" / "deeper" / "x.db")
    assert not (tmp_path / "new").exists()  # made at the first connection


def test_a_file_where_a_folder_belongs_is_named(tmp_path: Path) -> None:
    (tmp_path / "notes").write_text("")
    with pytest.raises(DatabaseUnavailable, match=f"{tmp_path / 'notes'} is a file$"):
        kwargs_for(tmp_path / "notes" / "sub" / "x.db")


def test_a_file_uri_is_not_taken_for_a_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(os, "access", lambda path, mode: False)  # a read-only working folder
    url = "sqlite:///file:memorydb_default?mode=memory&cache=shared&uri=true"
    SQLiteBackend().engine_kwargs(Settings.from_env(url, env={}))
    assert list(tmp_path.iterdir()) == []  # no `file:` folder made
