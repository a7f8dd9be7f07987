"""The backend's pieces in this process, without a database: validation, argument
encoding, the row -> TaskResult mapping, system checks and the worker's resolver."""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from tests.django.conftest import PROJECT

UTC = dt.UTC
NOW = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


@pytest.fixture(scope="module", autouse=True)
def django_configured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    import django
    from django.conf import settings

    if not settings.configured:
        folder = tmp_path_factory.mktemp("units")
        sys.path.insert(0, str(PROJECT))
        settings.configure(
            USE_TZ=True,
            INSTALLED_APPS=["taskstore.contrib.django", "demo_app"],
            DATABASES={
                "default": {"ENGINE": "django.db.backends.sqlite3", "NAME": folder / "a.db"}
            },
            TASKS={
                "default": {
                    "BACKEND": "taskstore.contrib.django.TaskstoreBackend",
                    "QUEUES": [],  # any queue name Django allows: taskstore's rule decides
                    "OPTIONS": {"database_url": f"sqlite:///{folder / 'tasks.db'}"},
                }
            },
        )
        django.setup()
    yield


def _info(status: str, **changes: Any) -> Any:
    from taskstore.records import TaskInfo
    from taskstore.states import TaskStatus

    values: dict[str, Any] = {
        "id": 7,
        "name": "demo_app.tasks.add",
        "queue": "default",
        "status": TaskStatus(status),
        "priority": 0,
        "attempts": 0,
        "max_attempts": 1,
        "run_at": NOW,
        "created_at": NOW,
        "updated_at": NOW,
        "started_at": None,
        "finished_at": None,
        "worker_id": None,
        "lease_expires_at": None,
        "progress": None,
        "payload": {"args": [1], "kwargs": {"b": 2}},
        "result": None,
        "error": None,
        "dedup_key": None,
        "concurrency_key": None,
    }
    return TaskInfo(**{**values, **changes})


def test_the_backend_declares_what_it_supports() -> None:
    from django.tasks import task_backends

    from taskstore.contrib.django import TaskstoreBackend

    backend = task_backends["default"]
    assert isinstance(backend, TaskstoreBackend)
    assert backend.supports_defer and backend.supports_async_task
    assert backend.supports_get_result and backend.supports_priority


def test_queue_names_follow_taskstore_rules() -> None:
    from demo_app.tasks import add
    from django.tasks.exceptions import InvalidTask

    with pytest.raises(InvalidTask, match="invalid queue name 'Bad Queue'"):
        add.using(queue_name="Bad Queue")
    with pytest.raises(InvalidTask, match="priority must be a whole number"):
        add.using(priority=101)
    assert add.using(queue_name="media-2", priority=-100).queue_name == "media-2"


@pytest.mark.parametrize(
    ("args", "kwargs", "why"),
    [
        ([dt.date(2026, 1, 1)], {}, "Unsupported type"),
        ([float("nan")], {}, "args\\[0\\] is nan"),
        ([], {"data": {1: "a"}}, "non-string key 1"),
        ([object()], {}, "Unsupported type"),
    ],
)
def test_arguments_that_are_not_json_are_refused_in_one_line(
    args: list[Any], kwargs: dict[str, Any], why: str
) -> None:
    from demo_app.tasks import add

    with pytest.raises(TypeError, match=why) as caught:
        add.enqueue(*args, **kwargs)
    assert "\n" not in str(caught.value)
    assert str(caught.value).startswith("cannot enqueue demo_app.tasks.add: arguments must be JSON")


def test_arguments_are_normalised_as_django_does() -> None:
    from taskstore.contrib.django.calls import arguments_of, payload_of

    payload = payload_of("m.f", ((1, 2), b"x"), {"t": (3,)})
    assert payload == {"args": [[1, 2], "x"], "kwargs": {"t": [3]}}
    assert arguments_of(payload) == ([[1, 2], "x"], {"t": [3]})


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        ("created", "READY"),
        ("not_finished", "READY"),
        ("assigned", "RUNNING"),
        ("running", "RUNNING"),
        ("completed", "SUCCESSFUL"),
        ("failed", "FAILED"),
        ("cancelled", "FAILED"),
    ],
)
def test_statuses_map_onto_djangos(status: str, expected: str) -> None:
    from taskstore.contrib.django.results import to_result

    result = to_result(_info(status), "default")
    assert result.status == expected
    assert result.id == "7" and result.backend == "default"
    assert (result.args, result.kwargs) == ([1], {"b": 2})


def test_a_completed_row_carries_its_return_value_and_timestamps() -> None:
    from taskstore.contrib.django.results import to_result

    later = NOW + dt.timedelta(seconds=5)
    info = _info(
        "completed",
        result={"n": 3},
        attempts=2,
        worker_id="host:1:abc",
        started_at=NOW,
        finished_at=later,
        priority=5,
        queue="mail",
    )
    result = to_result(info, "default")
    assert result.return_value == {"n": 3}
    assert result.worker_ids == ["host:1:abc", "host:1:abc"] and result.attempts == 2
    assert (result.enqueued_at, result.started_at, result.finished_at) == (NOW, NOW, later)
    assert result.last_attempted_at == NOW
    assert (result.task.priority, result.task.queue_name) == (5, "mail")


def test_errors_carry_an_importable_class_path_and_the_traceback() -> None:
    from taskstore.contrib.django.results import TaskCancelled, to_result

    doc = {"type": "ValueError", "message": "no", "traceback": "Traceback ...\nValueError: no"}
    [error] = to_result(_info("failed", error=doc), "default").errors
    assert error.exception_class is ValueError
    assert error.traceback.endswith("ValueError: no")

    [cancelled] = to_result(_info("cancelled"), "default").errors
    assert cancelled.exception_class is TaskCancelled

    retried = _info("created", attempts=1, error=doc)  # failed once, waiting to run again
    assert to_result(retried, "default").errors[0].exception_class_path == "builtins.ValueError"
    cut_off = _info("not_finished", attempts=1, error={"type": "CutOff", "message": "stop"})
    assert to_result(cut_off, "default").errors == []  # a note, not an exception


@pytest.mark.parametrize("stored", ["LeaseExpired", "DependencyFailed", "Cancelled", "UnknownTask"])
def test_errors_taskstore_writes_itself_have_an_importable_class_too(stored: str) -> None:
    from taskstore.contrib.django.results import to_result

    doc = {"type": stored, "message": "m"}
    [error] = to_result(_info("failed", error=doc), "default").errors
    assert error.exception_class.__name__ in (stored, "TaskCancelled")
    assert issubclass(error.exception_class, Exception)


def test_rows_that_are_not_django_tasks_have_no_result() -> None:
    from django.tasks import default_task_backend
    from django.tasks.exceptions import TaskResultDoesNotExist

    from taskstore.contrib.django.results import to_result

    with pytest.raises(TaskResultDoesNotExist, match="not a Django task"):
        to_result(_info("created", name="demo_app.tasks.not_a_task"), "default")
    for bad in ("abc", "-1", "1" * 30, "9" * 19, "\u00b2", "\u0661"):  # 2 non-ASCII digits
        with pytest.raises(TaskResultDoesNotExist):
            default_task_backend.get_result(bad)


def test_system_checks_name_bad_options() -> None:
    from taskstore.contrib.django.backend import TaskstoreBackend

    backend = TaskstoreBackend(
        "x", {"OPTIONS": {"database_url": "sqlite:///x.db", "max_atempts": 2, "database": "no"}}
    )
    assert sorted(m.id for m in backend.check()) == ["taskstore.E001", "taskstore.E002"]
    bad_attempts = TaskstoreBackend("y", {"OPTIONS": {"max_attempts": 0}})
    assert [m.id for m in bad_attempts.check()] == ["taskstore.E003"]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["database_url"], "OPTIONS must be a dict, got list"),
        ({"database_url": 5}, "OPTIONS['database_url'] must be a database URL string, got 5"),
        ({"database_url": " "}, "OPTIONS['database_url'] must be a database URL string"),
        ({"database_url": "mysql://h/db"}, "unsupported database URL scheme 'mysql'"),
        ({"database_url": "postgresql://h:99999/db"}, "invalid port 99999"),
        ({"database": ["default"]}, "OPTIONS['database'] names no database: ['default']"),
    ],
)
def test_system_checks_name_options_of_the_wrong_shape(options: Any, message: str) -> None:
    from taskstore.contrib.django.backend import TaskstoreBackend

    [problem] = TaskstoreBackend("z", {"OPTIONS": options}).check()
    assert message in problem.msg and problem.obj == "TASKS['z']"


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ("database_url", "OPTIONS must be a dict, got str"),
        ({"database_url": 5}, "OPTIONS['database_url'] must be a database URL string, got 5"),
        ({"databse_url": "sqlite:///x.db"}, "unknown OPTIONS databse_url"),
    ],
)
def test_options_the_checks_refuse_stop_enqueue_and_get_result_in_one_line(
    options: Any, message: str
) -> None:
    """Checks run at `manage.py` commands, not in a web server: a typo in OPTIONS must not
    send tasks to another database unnoticed."""
    from demo_app.tasks import add
    from django.core.exceptions import ImproperlyConfigured

    from taskstore.contrib.django.backend import TaskstoreBackend

    backend = TaskstoreBackend("z", {"OPTIONS": options})
    for call in (lambda: backend.enqueue(add, [1, 2], {}), lambda: backend.get_result("1")):
        with pytest.raises(ImproperlyConfigured, match=rf"^TASKS\['z'\]: {re.escape(message)}"):
            call()


def test_the_resolver_wraps_django_tasks_and_refuses_anything_else() -> None:
    from taskstore.contrib.django.handlers import resolve
    from worker.errors import NonRetryable

    sync = resolve("demo_app.tasks.add")
    assert sync is not None and not sync.is_async
    async_ = resolve("demo_app.tasks.async_add")
    assert async_ is not None and async_.is_async
    assert resolve("demo_app.nowhere.add") is None  # perhaps another worker's task
    refusing = resolve("demo_app.tasks.not_a_task")
    assert refusing is not None
    with pytest.raises(NonRetryable, match="is a function, not a Django task"):
        refusing.fn(None)


def test_a_task_whose_module_fails_on_its_own_imports_is_refused_not_left_to_others() -> None:
    """A missing package inside the module is its error to show; only a path that leads
    nowhere (no such module or attribute) is perhaps another worker's task."""
    from taskstore.contrib.django.handlers import resolve
    from worker.errors import NonRetryable

    assert resolve("demo_app.tasks.nowhere") is None
    refusing = resolve("demo_app.broken_imports.job")
    assert refusing is not None
    with pytest.raises(NonRetryable) as refused:
        refusing.fn(None)
    assert str(refused.value) == (
        "cannot import demo_app.broken_imports.job: ModuleNotFoundError: "
        "No module named 'taskstore_tests_package_not_installed'"
    )


def test_reading_a_result_whose_module_fails_to_import_says_so_in_does_not_exist() -> None:
    from django.tasks.exceptions import TaskResultDoesNotExist

    from taskstore.contrib.django.results import task_at

    assert task_at("demo_app.nowhere.add") is None
    with pytest.raises(TaskResultDoesNotExist, match="its module fails to import"):
        task_at("demo_app.broken_imports.job")


def test_a_return_value_that_is_not_json_fails_the_task_without_a_retry() -> None:
    """Another attempt would run the function, side effects and all, to the same end."""
    from types import SimpleNamespace

    from taskstore.contrib.django.handlers import resolve
    from worker.errors import NonRetryable

    handler = resolve("demo_app.tasks.returns_a_set")
    assert handler is not None
    ctx = SimpleNamespace(task_id=7, worker_id="w", attempt=1)
    with pytest.raises(NonRetryable, match=r"value of demo_app\.tasks\.returns_a_set is not"):
        handler.fn(ctx, args=[], kwargs={})


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"args": "7"}, "args must be a list, got str"),
        ({"args": {"x": 1}}, "args must be a list, got dict"),
        ({"args": [], "kwargs": "order_id"}, "kwargs must be a JSON object, got str"),
        ({"args": [1], "kwargs": [["b", 2]]}, "kwargs must be a JSON object, got list"),
    ],
)
def test_args_and_kwargs_of_the_wrong_shape_fail_the_task_without_calling_it(
    arguments: dict[str, Any], message: str
) -> None:
    """A string would be spread into characters and a dict into its keys: the function
    would run with arguments nobody gave it."""
    from types import SimpleNamespace

    from taskstore.contrib.django.handlers import resolve
    from worker.errors import WrongArguments

    handler = resolve("demo_app.tasks.add")
    assert handler is not None
    ctx = SimpleNamespace(task_id=7, worker_id="w", attempt=1)
    with pytest.raises(WrongArguments, match=rf"demo_app\.tasks\.add: {message}"):
        handler.fn(ctx, **arguments)


def test_max_attempts_past_what_an_enqueue_takes_is_named_by_the_check() -> None:
    from taskstore.contrib.django.backend import TaskstoreBackend

    [problem] = TaskstoreBackend("y", {"OPTIONS": {"max_attempts": 20_000}}).check()
    assert problem.id == "taskstore.E003" and "from 1 to 10000, got 20000" in problem.msg


def test_the_registry_registers_what_a_resolver_finds() -> None:
    from worker.registry import Registry, TaskDef

    asked: list[str] = []

    def resolver(name: str) -> TaskDef | None:
        asked.append(name)
        return TaskDef(name=name, fn=lambda ctx: None) if name.startswith("ok.") else None

    registry = Registry(resolvers=[resolver])
    assert registry.get("no.such") is None
    found = registry.get("ok.task")
    assert found is not None and registry.get("ok.task") is found
    assert asked == ["no.such", "ok.task"]  # a found name is registered: asked once
    assert dataclasses.is_dataclass(found)


def test_the_tasks_modules_of_installed_apps_are_registered_up_front() -> None:
    from taskstore.contrib.django.handlers import discover
    from worker.registry import Registry

    registry = Registry()
    names = discover(registry, "default")
    assert "demo_app.tasks.add" in names and "demo_app.tasks.async_add" in names
    assert "demo_app.tasks.not_a_task" not in names  # a plain function is no task
    assert registry.tasks["demo_app.tasks.send_mail"].queue == "emails"


def test_a_backends_worker_registers_only_that_backends_tasks_up_front() -> None:
    """Their queues are the ones it serves: another backend's would add queues its
    QUEUES do not list (a task sent to it with `using(backend=...)` is still found)."""
    from taskstore.contrib.django.handlers import discover
    from worker.registry import Registry

    assert discover(Registry(), "second") == []


def test_system_checks_name_queues_taskstore_would_refuse() -> None:
    from taskstore.contrib.django.backend import TaskstoreBackend

    backend = TaskstoreBackend("q", {"QUEUES": ["default", "high priority"], "OPTIONS": {}})
    [problem] = backend.check()
    assert problem.id == "taskstore.E006"
    assert problem.msg.startswith("QUEUES: invalid queue name 'high priority'")


def test_without_use_tz_a_result_carries_naive_local_times(settings_use_tz_off: None) -> None:
    from taskstore.contrib.django.results import to_result

    result = to_result(_info("completed", started_at=NOW, finished_at=NOW), "default")
    assert result.enqueued_at == dt.datetime(2026, 1, 1, 22, 4, 5)  # New York, naive
    assert result.finished_at.tzinfo is None and result.started_at.tzinfo is None


@pytest.fixture
def settings_use_tz_off() -> Iterator[None]:
    from django.test.utils import override_settings

    with override_settings(USE_TZ=False, TIME_ZONE="America/New_York"):
        yield


def test_a_postgresql_socket_directory_stays_the_host_of_the_task_url(monkeypatch) -> None:
    from types import SimpleNamespace

    from sqlalchemy.engine import make_url

    from taskstore.contrib.django import databases

    socket = {"NAME": "shop", "USER": "app", "HOST": "/var/run/postgresql", "PORT": "5433"}
    fake = {"sock": SimpleNamespace(settings_dict=socket, vendor="postgresql")}
    monkeypatch.setattr(databases, "connections", fake)
    url = make_url(databases.url_of("sock"))
    assert (url.database, url.host, url.port) == ("shop", None, 5433)
    assert url.query["host"] == "/var/run/postgresql"
    assert databases.same_database("postgresql://app@localhost:5433/shop", "sock")


def test_a_project_without_the_app_is_told_to_install_it() -> None:
    """Without the app, `manage.py migrate` makes no task tables: the first enqueue's
    "run manage.py migrate" would send the user round in a circle."""
    from django.test import override_settings

    from taskstore.contrib.django.backend import TaskstoreBackend, _schema_words
    from taskstore.errors import SchemaOutOfDate

    missing = "the database has no taskstore schema yet: run `taskstore migrate`"
    with override_settings(INSTALLED_APPS=["demo_app"]):
        [problem] = TaskstoreBackend("w", {}).check()
        with pytest.raises(SchemaOutOfDate) as told, _schema_words("w"):
            raise SchemaOutOfDate(missing)
    assert problem.id == "taskstore.E007" and problem.obj == "TASKS['w']"
    assert problem.msg.startswith("'taskstore.contrib.django' is not in INSTALLED_APPS")
    add = "add 'taskstore.contrib.django' to INSTALLED_APPS, then run `manage.py migrate`"
    assert str(told.value) == f"TASKS['w']: the database has no taskstore schema yet: {add}"
    assert TaskstoreBackend("w", {}).check() == []  # installed again
    with pytest.raises(SchemaOutOfDate) as again, _schema_words("w"):
        raise SchemaOutOfDate(missing)
    assert str(again.value).endswith("yet: run `manage.py migrate`")


def test_postgresql_options_for_schema_and_ssl_reach_the_task_url(monkeypatch) -> None:
    """psycopg's OPTIONS a task connection needs as well (a search_path, verify-full and
    its CA); Django's own (isolation level, server-side binding) stay behind."""
    from types import SimpleNamespace

    from sqlalchemy.engine import make_url

    from taskstore.contrib.django import databases
    from taskstore.settings import normalize_url

    options = {
        "options": "-c search_path=shop",
        "sslmode": "verify-full",
        "sslrootcert": "/etc/ssl/db-ca.pem",
        "connect_timeout": 10,
        "isolation_level": 2,
        "server_side_binding": True,
    }
    shop = {"NAME": "shop", "USER": "app", "HOST": "db", "PORT": "", "OPTIONS": options}
    fake = {"shop": SimpleNamespace(settings_dict=shop, vendor="postgresql")}
    monkeypatch.setattr(databases, "connections", fake)
    url = make_url(databases.url_of("shop"))
    assert dict(url.query) == {
        "options": "-c search_path=shop",
        "sslmode": "verify-full",
        "sslrootcert": "/etc/ssl/db-ca.pem",
        "connect_timeout": "10",
    }
    normalize_url(str(url))  # a URL taskstore takes
    # Another search_path names other tables: enqueue would not share Django's transaction.
    assert databases.same_database(str(url), "shop")
    assert not databases.same_database("postgresql://app@db/shop", "shop")
