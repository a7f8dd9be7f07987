"""The Django tests: a demo project driven by real processes (``manage.py``), on SQLite
and on PostgreSQL.

Only the Python 3.12+ run with Django installed collects this folder (see
``tests/conftest.py``); CI runs ``pytest tests/django`` in that environment.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import BACKENDS, create_pg_database, drop_pg_database

PROJECT = Path(__file__).parent / "project"
BIN = Path(sys.executable).parent


class Site:
    """The demo project on one Django database and one task database."""

    def __init__(self, django_url: str, tasks_url: str | None) -> None:
        self.django_url = django_url
        self.task_url = tasks_url or django_url
        self.env = {
            **os.environ,
            "DEMO_DJANGO_DATABASE": django_url,
            "DEMO_TASKS_URL": tasks_url or "",
            "PYTHONPATH": str(PROJECT),
        }
        self.env.pop("TASKSTORE_DATABASE_URL", None)

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            args, cwd=PROJECT, env=self.env, capture_output=True, text=True, timeout=120
        )
        if check and done.returncode != 0:
            raise AssertionError(f"{args[:3]} exited {done.returncode}: {done.stderr[-2000:]}")
        return done

    def manage(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.run(sys.executable, "manage.py", *args, check=check)

    def demo(self, action: str, *values: Any) -> Any:
        texts = [v if isinstance(v, str) else json.dumps(v) for v in values]
        return json.loads(self.manage("demo", action, *texts).stdout)

    def enqueue(self, *calls: dict[str, Any], how: str = "enqueue") -> list[str]:
        return self.demo(how, list(calls))

    def results(self, *ids: str) -> list[dict[str, Any]]:
        return self.demo("results", *ids)

    def work(self) -> subprocess.CompletedProcess[str]:
        return self.manage("taskstore_worker", "--burst", "--log-level", "warning")

    def taskstore(self, *args: str) -> Any:
        """``taskstore ARGS --json --database-url TASK_URL``, parsed."""
        done = self.run(str(BIN / "taskstore"), *args, "--json", "--database-url", self.task_url)
        return json.loads(done.stdout)


def _databases(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path, shared: bool
) -> Iterator[tuple[str, str]]:
    """(Django's URL, the task URL): one database when `shared`, else two."""
    if backend == "sqlite":
        app = f"sqlite:///{tmp_path / 'app.db'}"
        yield app, app if shared else f"sqlite:///{tmp_path / 'tasks.db'}"
        return
    admin = request.getfixturevalue("pg_admin_url")
    made = [create_pg_database(admin, migrate=False) for _ in range(1 if shared else 2)]
    try:
        yield made[0], made[-1]
    finally:
        for url in made:
            drop_pg_database(admin, url)


def _site(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    *,
    shared: bool,
    own: bool,
    migrated: bool = True,
) -> Iterator[Site]:
    """A migrated `Site` on the backend of `request.param`; with `own`, no ``database_url``
    (the tasks live in Django's database)."""
    for django_url, task_url in _databases(request.param, request, tmp_path, shared=shared):
        made = Site(django_url, None if own else task_url)
        if migrated:
            made.manage("migrate", "-v0")
        yield made


@pytest.fixture(params=BACKENDS)
def site(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Site]:
    """Django and taskstore share one database, named by an explicit ``database_url``."""
    yield from _site(request, tmp_path, shared=True, own=False)


@pytest.fixture(params=BACKENDS)
def own_database_site(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Site]:
    """No ``database_url``: the tasks live in Django's database."""
    yield from _site(request, tmp_path, shared=True, own=True)


@pytest.fixture(params=BACKENDS)
def new_site(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Site]:
    """As `own_database_site`, before its first ``manage.py migrate``."""
    yield from _site(request, tmp_path, shared=True, own=True, migrated=False)


@pytest.fixture(params=BACKENDS)
def separate_site(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Site]:
    """The task database is not Django's."""
    yield from _site(request, tmp_path, shared=False, own=False)
