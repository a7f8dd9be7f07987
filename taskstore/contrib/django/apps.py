"""The Django app: ``manage.py migrate`` also brings the task tables up to date, and
``manage.py flush`` (so each ``TransactionTestCase``) empties them with Django's own."""

from __future__ import annotations

from typing import Any

from django.apps import AppConfig
from django.core.exceptions import ImproperlyConfigured
from django.core.management import CommandError
from django.core.management.color import no_style
from django.db.backends.base.base import NO_DB_ALIAS
from django.db.backends.signals import connection_created
from django.db.models.signals import post_migrate


class TaskstoreConfig(AppConfig):
    """Adds ``manage.py taskstore_worker`` and migrates the task database with Django's."""

    name = "taskstore.contrib.django"
    label = "taskstore"
    verbose_name = "taskstore"

    def ready(self) -> None:
        # Django registers the TASKS backends' system checks only once django.tasks is
        # imported, which nothing else may have done: without this a typo in OPTIONS
        # would pass every manage.py command unnoticed.
        import django.tasks  # noqa: F401

        post_migrate.connect(_after_migrate_or_flush, sender=self)
        connection_created.connect(_close_stores_before_admin)


def _close_stores_before_admin(connection: Any, **_: Any) -> None:
    """Django opens a connection to no database only to create or drop one (the test
    runner's test databases): the task stores let go of theirs first."""
    if connection.alias == NO_DB_ALIAS:
        from taskstore.contrib.django.stores import close_all

        close_all()


def _after_migrate_or_flush(using: str, **kwargs: Any) -> None:
    """Django sends post_migrate after ``migrate`` (with the plan it ran) and after
    ``flush`` (without one): bring the task tables on `using` along with either."""
    if "plan" in kwargs:
        _migrate_task_databases(using)
    else:
        _flush_task_tables(using)


def _backends_on(using: str) -> list[Any]:
    """The taskstore backends whose Django database is the alias `using`."""
    from django.tasks import task_backends

    from taskstore.contrib.django.backend import TaskstoreBackend

    return [
        b for b in task_backends.all() if isinstance(b, TaskstoreBackend) and b.database == using
    ]


def _flush_task_tables(using: str) -> None:
    """Empty the task tables that live in the flushed database too: Django flushes only
    its models' tables, so a TransactionTestCase's tasks ran inside the next test. (The
    tables stay, so nothing needs migrating.)"""
    from django.db import connections

    from taskstore.models.base import Base

    if not any(b.shares_database() for b in _backends_on(using)):
        return
    connection = connections[using]
    present = set(connection.introspection.table_names())
    tables = [t.name for t in Base.metadata.sorted_tables if t.name in present]
    if tables:
        statements = connection.ops.sql_flush(no_style(), tables, allow_cascade=True)
        connection.ops.execute_sql_flush(statements)


def _migrate_task_databases(using: str) -> None:
    """After ``manage.py migrate --database ALIAS``: migrate the task database of every
    taskstore backend whose Django database is ALIAS (the tables may live in it)."""
    from taskstore.contrib.django.stores import migrate
    from taskstore.errors import TaskStoreError

    for backend in _backends_on(using):
        try:
            migrate(backend.database_url)
        except (TaskStoreError, ImproperlyConfigured) as exc:  # one line, no traceback
            raise CommandError(f"taskstore: {exc}") from None
