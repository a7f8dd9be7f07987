"""A task row as Django's `TaskResult`.

Statuses: created / waiting / not_finished are READY, assigned / running RUNNING,
completed SUCCESSFUL (its stored result is the return value), failed / cancelled FAILED
with the stored error as a `TaskError`. taskstore keeps the last error and the last
worker of a task, so `errors` holds at most one entry and `worker_ids` names that worker
once per attempt (``result.attempts`` is taskstore's attempt count).
"""

from __future__ import annotations

import builtins
import datetime as dt
from typing import Any

from django.conf import settings
from django.tasks import Task, TaskResult, TaskResultStatus
from django.tasks.base import TASK_MAX_PRIORITY, TASK_MIN_PRIORITY, TaskError
from django.tasks.exceptions import InvalidTask, TaskResultDoesNotExist
from django.utils import timezone
from django.utils.module_loading import import_string

from taskstore.contrib.django.calls import arguments_of
from taskstore.records import TaskInfo

_STATUS = {
    "created": TaskResultStatus.READY,
    "waiting": TaskResultStatus.READY,
    "not_finished": TaskResultStatus.READY,
    "assigned": TaskResultStatus.RUNNING,
    "running": TaskResultStatus.RUNNING,
    "completed": TaskResultStatus.SUCCESSFUL,
    "failed": TaskResultStatus.FAILED,
    "cancelled": TaskResultStatus.FAILED,
}


class TaskCancelled(Exception):
    """The error of a task an operator (or a failed dependency) cancelled."""


class LeaseExpired(Exception):
    """The error of a task whose worker stopped renewing its lease (it died) once the
    task had no attempts left."""


class DependencyFailed(Exception):
    """The error of a task cancelled because a task it depends on failed or was cancelled."""


def _path(kind: type) -> str:
    return f"{kind.__module__}.{kind.__qualname__}"


# Errors taskstore itself writes, by the bare name it stores them under.
_OWN_ERRORS = {
    "LeaseExpired": _path(LeaseExpired),
    "DependencyFailed": _path(DependencyFailed),
    "Cancelled": _path(TaskCancelled),
    "UnknownTask": "worker.errors.UnknownTask",
}


def import_at(path: str) -> Any:
    """What module path `path` names; `LookupError` if it names nothing here (perhaps a
    task of another release). Any other error: its module exists but fails to import,
    a missing package of its own imports included."""
    try:
        return import_string(path)
    except ImportError as exc:
        if _leads_nowhere(path, exc):
            raise LookupError(path) from None
        raise


def _leads_nowhere(path: str, exc: ImportError) -> bool:
    if isinstance(exc, ModuleNotFoundError) and exc.name:
        return path == exc.name or path.startswith(exc.name + ".")  # the path's own module
    # import_string's "does not define" comes from an AttributeError; a bare name, too
    return isinstance(exc.__cause__, AttributeError) or "." not in path


def task_at(path: str) -> Task | None:
    """The Django `Task` at module path `path`, or None if there is none there;
    `TaskResultDoesNotExist` naming the error if its module fails to import."""
    try:
        found = import_at(path)
    except LookupError:
        return None
    except Exception as exc:
        raise TaskResultDoesNotExist(
            f"{path}: its module fails to import: {type(exc).__name__}: {exc}"
        ) from exc
    return found if isinstance(found, Task) else None


def to_result(info: TaskInfo, backend_alias: str) -> TaskResult:
    """The row `info` as a `TaskResult` of the backend `backend_alias`."""
    task = task_at(info.name)
    if task is None:
        raise TaskResultDoesNotExist(f"task {info.id} ({info.name}) is not a Django task")
    status = _STATUS.get(info.status.value, TaskResultStatus.READY)
    args, kwargs = arguments_of(info.payload)
    result = TaskResult(
        task=_as_enqueued(task, info, backend_alias),
        id=str(info.id),
        status=status,
        enqueued_at=_local(info.created_at),
        started_at=_local(info.started_at),
        finished_at=_local(info.finished_at) if status in _FINISHED else None,
        last_attempted_at=_local(info.started_at),
        args=args,
        kwargs=kwargs,
        backend=backend_alias,
        errors=errors_of(info),
        worker_ids=worker_ids_of(info),
    )
    if status == TaskResultStatus.SUCCESSFUL:
        object.__setattr__(result, "_return_value", info.result)  # TaskResult is frozen
    return result


_FINISHED = {TaskResultStatus.SUCCESSFUL, TaskResultStatus.FAILED}


def _local(moment: dt.datetime | None) -> dt.datetime | None:
    """As Django gives datetimes: aware with USE_TZ, else naive in its time zone (so a
    refreshed result compares with the one `enqueue` returned)."""
    if moment is None or settings.USE_TZ:
        return moment
    return timezone.make_naive(moment)


def _as_enqueued(task: Task, info: TaskInfo, backend_alias: str) -> Task:
    """The task with the queue and priority its row has (declared ones if Django's checks
    refuse them: a row enqueued by ``taskstore enqueue`` may hold any)."""
    priority = min(TASK_MAX_PRIORITY, max(TASK_MIN_PRIORITY, info.priority))
    try:
        return task.using(priority=priority, queue_name=info.queue, backend=backend_alias)
    except InvalidTask:
        return task


def errors_of(info: TaskInfo) -> list[TaskError]:
    """The stored error as Django's `TaskError` (class path and traceback)."""
    doc: dict[str, Any] | None = info.error
    finished_badly = info.status.value in ("failed", "cancelled")
    if doc is None or (not finished_badly and "traceback" not in doc):
        # A note (a stop cut an attempt off), not an exception; or no error at all.
        if info.status.value == "cancelled":
            return [TaskError(exception_class_path=_path(TaskCancelled), traceback="cancelled")]
        return []
    trace = doc.get("traceback") or f"{doc.get('type')}: {doc.get('message', '')}"
    return [TaskError(exception_class_path=class_path(str(doc.get("type"))), traceback=trace)]


def class_path(kind: str) -> str:
    """An importable path for a stored error type (built-ins and taskstore's own errors
    are stored by bare name)."""
    if "." not in kind and isinstance(getattr(builtins, kind, None), type):
        return f"builtins.{kind}"
    return _OWN_ERRORS.get(kind, kind)


def worker_ids_of(info: TaskInfo) -> list[str]:
    """The task's last worker, once per attempt (taskstore does not keep earlier ones)."""
    worker = info.worker_id or (info.error or {}).get("worker")
    return [str(worker)] * info.attempts if worker else []
