"""`TaskstoreBackend`: Django's task backend interface over a taskstore database.

OPTIONS:
- ``database_url``: the task database (``postgresql://...`` or ``sqlite:///...``);
  without it the tasks live in Django's own database (``database``);
- ``database``: the Django database alias whose transactions enqueues join when it is the
  task database (default ``"default"``);
- ``max_attempts``: attempts per task before it is FAILED (default 1: Django tasks are
  not retried unless asked).

Django priority (-100..100, larger first) is taskstore's priority as is; ``run_after`` is
``run_at``; ``queue_name`` is the queue. Inside ``transaction.atomic()`` on the task
database the task row is written on Django's connection and commits with the caller's
data; otherwise it is committed at once (use ``transaction.on_commit``).
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator, Sequence
from typing import Any

from django.apps import apps
from django.conf import settings
from django.core import checks
from django.core.exceptions import ImproperlyConfigured
from django.db import DEFAULT_DB_ALIAS, DatabaseError, connections
from django.tasks import Task, TaskResult, TaskResultStatus
from django.tasks.backends.base import BaseTaskBackend
from django.tasks.exceptions import InvalidTask, TaskResultDoesNotExist
from django.tasks.signals import task_enqueued
from django.utils import timezone

from taskstore import validation
from taskstore.contrib.django.calls import payload_of
from taskstore.errors import InvalidInput
from taskstore.validation import is_task_id

# SQLAlchemy and the store load on the first enqueue or result, not here: Django builds
# every backend for its system checks, which each ``manage.py`` command runs.

_OPTIONS = frozenset({"database_url", "database", "max_attempts"})
#: Django takes an empty QUEUES for "any queue name"; a worker cannot serve names unknown
_ANY_QUEUE = (
    "QUEUES is empty, so any queue name is accepted, but `manage.py taskstore_worker` "
    "serves only 'default' unless given --queue: list the queue names in QUEUES"
)
#: the app that migrates the task tables and adds `manage.py taskstore_worker`
APP = "taskstore.contrib.django"


class TaskstoreBackend(BaseTaskBackend):
    """Enqueue Django tasks as taskstore rows and read them back as `TaskResult`s."""

    supports_defer = True
    supports_async_task = True
    supports_get_result = True
    supports_priority = True

    def __init__(self, alias: str, params: dict[str, Any]) -> None:
        super().__init__(alias, params)
        # Not a dict: `check` says so; meanwhile every option keeps its default.
        options = self.options if isinstance(self.options, dict) else {}
        self._url: str | None = options.get("database_url")
        self.database: str = options.get("database", DEFAULT_DB_ALIAS)
        self.max_attempts: int = options.get("max_attempts", 1)

    # ---------------------------------------------------------- configuration
    @property
    def database_url(self) -> str:
        """The task database: OPTIONS['database_url'], else Django's database."""
        from taskstore.contrib.django import databases

        return self._url or databases.url_of(self.database)

    @functools.cached_property
    def _max_payload_bytes(self) -> int:
        from taskstore.settings import Settings

        return Settings.from_env(self.database_url).max_payload_bytes

    def shares_database(self) -> bool:
        """Is the task table in the Django database `database` (so enqueues can join its
        transactions)? Asked per enqueue: Django's test runner renames databases."""
        from taskstore.contrib.django import databases

        return self._url is None or databases.same_database(self._url, self.database)

    def check(self, **kwargs: Any) -> list[checks.CheckMessage]:
        """Django system checks: unknown OPTIONS, bad values and a missing app, one
        message each."""
        where = f"TASKS[{self.alias!r}]"
        found = self._option_problems()
        if not apps.is_installed(APP):
            found.append(
                (
                    "E007",
                    f"{APP!r} is not in INSTALLED_APPS: without it `manage.py migrate` "
                    "creates no task tables and there is no `manage.py taskstore_worker`",
                )
            )
        told: list[checks.CheckMessage] = [
            checks.Error(message, obj=where, id=f"taskstore.{code}") for code, message in found
        ]
        if not self.queues:
            told.append(checks.Warning(_ANY_QUEUE, obj=where, id="taskstore.W001"))
        return told

    def _option_problems(self) -> list[tuple[str, str]]:
        if not isinstance(self.options, dict):
            return [("E005", f"OPTIONS must be a dict, got {type(self.options).__name__}")]
        found = []
        unknown = sorted(map(str, set(self.options) - _OPTIONS))
        if unknown:
            known = ", ".join(sorted(_OPTIONS))
            found.append(("E001", f"unknown OPTIONS {', '.join(unknown)} (known: {known})"))
        if not isinstance(self.database, str) or self.database not in settings.DATABASES:
            found.append(("E002", f"OPTIONS['database'] names no database: {self.database!r}"))
        attempts = self.max_attempts
        whole = isinstance(attempts, int) and not isinstance(attempts, bool)
        if not whole or not 1 <= attempts <= 10_000:
            found.append(
                (
                    "E003",
                    f"OPTIONS['max_attempts'] must be an integer from 1 to 10000, got {attempts!r}",
                )
            )
        if self._url is not None:
            found.extend(("E004", problem) for problem in _url_problems(self._url))
        found.extend(("E006", f"QUEUES: {problem}") for problem in _queue_problems(self.queues))
        return found

    @functools.cached_property
    def _refused(self) -> str | None:
        problems = self._option_problems()
        return f"TASKS[{self.alias!r}]: {problems[0][1]}" if problems else None

    def _configured(self) -> None:
        """Raise the checks' first complaint about OPTIONS: they run with `manage.py`
        commands, not in a web server, and a mistyped option would otherwise send tasks
        to another database unnoticed."""
        if self._refused is not None:
            raise ImproperlyConfigured(self._refused)

    # --------------------------------------------------------------- enqueue
    def validate_task(self, task: Task) -> None:
        """Django's checks, then taskstore's rules for the name and the queue."""
        super().validate_task(task)
        try:
            validation.check_name(task.module_path)
            validation.check_queue(task.queue_name)
        except InvalidInput as exc:
            raise InvalidTask(str(exc)) from None

    def enqueue(self, task: Task, args: Sequence[Any], kwargs: dict[str, Any]) -> TaskResult:
        """Write the task row (in the caller's transaction where it can) and return its
        READY result, whose id is the taskstore task id."""
        self._configured()
        self.validate_task(task)
        payload = payload_of(task.module_path, args, kwargs)
        task_id = self._insert(task, payload)
        result = TaskResult(
            task=task,
            id=str(task_id),
            status=TaskResultStatus.READY,
            enqueued_at=timezone.now(),
            started_at=None,
            finished_at=None,
            last_attempted_at=None,
            args=payload["args"],
            kwargs=payload["kwargs"],
            backend=self.alias,
            errors=[],
            worker_ids=[],
        )
        task_enqueued.send(type(self), task_result=result)
        return result

    def _insert(self, task: Task, payload: dict[str, Any]) -> int:
        from taskstore.contrib.django import stores, transactional

        options: dict[str, Any] = {
            "queue": task.queue_name,
            "priority": int(task.priority),  # Django takes any whole number: 5.0, True
            "run_at": _aware(task.run_after),
            "max_attempts": self.max_attempts,
        }
        connection = connections[self.database]
        with _schema_words(self.alias, self.database):
            if connection.in_atomic_block and self.shares_database():
                return transactional.enqueue_on(
                    connection,
                    task.module_path,
                    payload,
                    max_payload_bytes=self._max_payload_bytes,
                    **options,
                )
            store = stores.shared_store(self.database_url)
            return store.enqueue(task.module_path, payload, **options)

    # ---------------------------------------------------------------- results
    def get_result(self, result_id: str) -> TaskResult:
        """The task with this id as a `TaskResult` (`TaskResultDoesNotExist` if there is
        none, or it is not a Django task)."""
        from taskstore.contrib.django import stores
        from taskstore.contrib.django.results import to_result

        self._configured()
        task_id = _task_id(result_id)
        with _schema_words(self.alias, self.database):
            info = stores.shared_store(self.database_url).get(task_id)
        if info is None:
            raise TaskResultDoesNotExist(result_id)
        return to_result(info, self.alias)


@contextlib.contextmanager
def _schema_words(alias: str, database: str = DEFAULT_DB_ALIAS) -> Iterator[None]:
    """A missing task table, said the Django way: the store's error names `taskstore
    migrate`, and on Django's own connection it is the driver's. (`database`: the
    backend's Django database, whose migrate brings the task tables along.)"""
    from taskstore.errors import SchemaOutOfDate

    try:
        yield
    except SchemaOutOfDate as exc:
        words = str(exc).replace("run `taskstore migrate`", _migrate(database))
        words = words.replace("`taskstore migrate`", f"`{_command(database)}`")
        raise SchemaOutOfDate(f"TASKS[{alias!r}]: {words}") from None
    except DatabaseError as exc:
        first = (str(exc).splitlines() or [""])[0]
        if "taskstore_" not in first or not any(w in first for w in _MISSING):
            raise
        raise SchemaOutOfDate(
            f"TASKS[{alias!r}]: the taskstore schema is missing or behind ({first}): "
            + _migrate(database)
        ) from None


def _migrate(database: str) -> str:
    """What brings the task tables up to date: `manage.py migrate` of the backend's
    Django database, once the app that migrates them is installed."""
    if apps.is_installed(APP):
        return f"run `{_command(database)}`"
    return f"add {APP!r} to INSTALLED_APPS, then run `{_command(database)}`"


def _command(database: str) -> str:
    if database == DEFAULT_DB_ALIAS:
        return "manage.py migrate"
    return f"manage.py migrate --database {database}"  # a plain one runs on the default only


#: how SQLite and PostgreSQL say a table or column is not there
_MISSING = ("no such table", "no such column", "does not exist")


def _task_id(result_id: Any) -> int:
    text = str(result_id).strip()
    # ids are positive 64-bit integers, written in ASCII digits ("²".isdigit() too)
    if not (text.isascii() and text.isdigit()) or not is_task_id(int(text)):
        raise TaskResultDoesNotExist(result_id)
    return int(text)


def _aware(moment: Any) -> Any:
    """``run_after`` for taskstore: naive datetimes (USE_TZ off) in Django's time zone."""
    if moment is not None and timezone.is_naive(moment):
        return timezone.make_aware(moment)
    return moment


def _queue_problems(queues: set[Any]) -> list[str]:
    """QUEUES names taskstore would refuse at every enqueue (Django checks only that a
    task's queue is listed)."""
    found = []
    for name in sorted(queues, key=repr):
        try:
            validation.check_queue(name)
        except InvalidInput as exc:
            found.append(str(exc))
    return found


def _url_problems(url: object) -> list[str]:
    """What is wrong with OPTIONS['database_url'] (nothing, most often)."""
    from taskstore.errors import ConfigError
    from taskstore.settings import normalize_url

    if not isinstance(url, str) or not url.strip():
        return [f"OPTIONS['database_url'] must be a database URL string, got {url!r}"]
    try:
        normalize_url(url)
    except ConfigError as exc:
        return [f"OPTIONS['database_url']: {exc}"]
    return []
