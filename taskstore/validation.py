"""Input validation at the store boundary: names, payloads, scheduling options.

Everything is checked before a row is written; each refusal is an `InvalidInput` whose
message is one line naming the problem.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from collections.abc import Set as AbstractSet
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from taskstore.errors import InvalidInput, TaskNotFound
from taskstore.jsoncodec import dumps_json
from taskstore.records import NewTask
from taskstore.states import FINISHED, TaskStatus

QUEUE_RE = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
#: dotted parts (``.`` or ``:`` between them, none empty), each starting with a letter,
#: a digit or ``_`` (the first: a letter or ``_``); the length is checked apart
NAME_RE = re.compile(r"[A-Za-z_][\w-]*(?:[.:]\w[\w-]*)*", re.ASCII)
NAME_MAX = 200
_PRIORITY_RANGE = (-32768, 32767)
#: the largest id a task can have (a signed 64-bit integer on both databases)
MAX_TASK_ID = 2**63 - 1
ENQUEUE_KEYS = frozenset(
    {
        "name",
        "payload",
        "queue",
        "priority",
        "delay",
        "run_at",
        "max_attempts",
        "dedup_key",
        "concurrency_key",
        "depends_on",
        "key",
    }
)


def _shown(value: Any, limit: int = 60) -> str:
    """`value`'s repr, cut to `limit` characters (a string keeps its closing quote)."""
    text = repr(value)
    if len(text) <= limit:
        return text
    if isinstance(value, str):
        return f"{text[: limit - 4]}...{text[-1]} ({len(value)} characters)"
    return text[: limit - 3] + "..."


# Names and queues already accepted: a batch repeats a handful of them thousands of times.
_accepted: set[str] = set()
_ACCEPTED_MAX = 4096


def _accept(value: str) -> str:
    if len(_accepted) >= _ACCEPTED_MAX:
        _accepted.clear()
    _accepted.add(value)
    return value


def check_queue(queue: Any) -> str:
    if type(queue) is str and "q:" + queue in _accepted:
        return queue
    if not isinstance(queue, str) or not QUEUE_RE.fullmatch(queue):
        raise InvalidInput(
            f"invalid queue name {_shown(queue)}: use 1-64 of a-z 0-9 _ - "
            "(starting with a letter or digit)"
        )
    _accept("q:" + queue)
    return queue


def check_name(name: Any) -> str:
    if type(name) is str and "n:" + name in _accepted:
        return name
    if not isinstance(name, str) or len(name) > NAME_MAX or not NAME_RE.fullmatch(name):
        raise InvalidInput(
            f"invalid task name {_shown(name)}: use a dotted identifier "
            "(letters, digits, _ and -, in parts joined by . or :, at most 200 characters)"
        )
    _accept("n:" + name)
    return name


#: deeper than this, a document is refused (Python's own recursion would give out first)
MAX_JSON_DEPTH = 256


def _check_keys(value: Any, path: str = "payload", depth: int = 0) -> None:
    """Refuse what JSON would silently change or what a database cannot store: non-string
    keys (json.dumps turns 1 into "1") and NUL characters (PostgreSQL rejects U+0000)."""
    if depth > MAX_JSON_DEPTH and isinstance(value, dict | list | tuple):
        root = path.split("[", 1)[0]
        raise InvalidInput(f"{root} is nested more than {MAX_JSON_DEPTH} levels deep")
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise InvalidInput(
                    f"{path} has a non-string key {_shown(key)} (JSON object keys are"
                    " strings: convert it, as str(key))"
                )
            _check_text(key, path)
            _check_keys(item, f"{path}[{_shown(key)}]", depth + 1)
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            _check_keys(item, f"{path}[{index}]", depth + 1)
    elif isinstance(value, str):
        _check_text(value, path)


def _check_text(text: str, path: str) -> None:
    if "\x00" in text:
        raise InvalidInput(f"{path} contains a NUL character, which cannot be stored")


def encode_json(value: Any, what: str, max_bytes: int | None = None) -> str:
    """Encode a JSON document or explain in one line why it is not one."""
    _check_keys(value, what)
    try:
        text = dumps_json(value)
    except ValueError:
        raise InvalidInput(f"{what} is not JSON: NaN and Infinity are not allowed") from None
    except TypeError as exc:
        raise InvalidInput(f"{what} is not JSON: {exc}") from None
    except RecursionError:
        raise InvalidInput(f"{what} is not JSON: nested too deeply") from None
    try:
        size = len(text.encode())
    except UnicodeEncodeError:  # a lone surrogate: valid in Python strings, not in UTF-8
        raise InvalidInput(f"{what} is not valid UTF-8 text (it holds a lone surrogate)") from None
    if max_bytes is not None and size > max_bytes:
        raise InvalidInput(
            f"{what} is {size} bytes, over the limit of {max_bytes} (TASKSTORE_MAX_PAYLOAD_BYTES)"
        )
    return text


def encode_payload(payload: Any, max_bytes: int) -> str:
    if payload is None:
        payload = {}
    if not payload and type(payload) is dict and max_bytes >= 2:
        return "{}"  # a task without arguments: nothing to check or encode
    if type(payload) is not dict:  # the common case skips the (slow) ABC check and copy
        if not isinstance(payload, Mapping):
            raise InvalidInput(f"payload must be a JSON object, got {type(payload).__name__}")
        payload = dict(payload)
    return encode_json(payload, "payload", max_bytes)


def _int(value: Any, what: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise InvalidInput(f"{what} must be an integer from {low} to {high}, got {_shown(value)}")
    return value


#: beyond this a task's due time is a mistake (an epoch in milliseconds, say), and past
#: the year 9999 the database may store what Python cannot read back
MAX_DELAY_SECONDS = 100 * 365.25 * 86400
LAST_RUN_AT_YEAR = 9000


def _delay_seconds(delay: Any) -> float:
    if delay is None:
        return 0.0
    if isinstance(delay, dt.timedelta):
        delay = delay.total_seconds()
    if isinstance(delay, bool) or not isinstance(delay, int | float) or not math.isfinite(delay):
        raise InvalidInput(f"delay must be a number of seconds or a timedelta, got {_shown(delay)}")
    if not 0 <= delay <= MAX_DELAY_SECONDS:
        raise InvalidInput(f"delay must be from 0 to 100 years in seconds, got {delay:g}")
    return float(delay)


def _run_at(run_at: Any) -> dt.datetime | None:
    if run_at is None:
        return None
    if not isinstance(run_at, dt.datetime) or run_at.tzinfo is None:
        raise InvalidInput("run_at must be a timezone-aware datetime")
    if run_at.year > LAST_RUN_AT_YEAR:
        raise InvalidInput(f"run_at must be before the year {LAST_RUN_AT_YEAR + 1}, got {run_at}")
    return run_at


def new_task(
    name: Any,
    payload: Any = None,
    *,
    max_payload_bytes: int,
    queue: Any = "default",
    priority: Any = 0,
    delay: Any = None,
    run_at: Any = None,
    max_attempts: Any = None,
    dedup_key: Any = None,
    concurrency_key: Any = None,
    depends_on: Any = None,
    key: Any = None,
) -> NewTask:
    """Validate one enqueue request and return the row to insert."""
    if delay is not None and run_at is not None:
        raise InvalidInput("give delay or run_at, not both")
    dedup_key = check_key(dedup_key, "dedup_key")
    refs = check_depends_on(depends_on)
    if refs and dedup_key is not None:
        raise InvalidInput("depends_on cannot be combined with dedup_key")
    return NewTask(
        name=check_name(name),
        payload_json=encode_payload(payload, max_payload_bytes),
        queue=check_queue(queue),
        priority=_int(priority, "priority", *_PRIORITY_RANGE),
        delay_seconds=_delay_seconds(delay),
        run_at=_run_at(run_at),
        max_attempts=None
        if max_attempts is None
        else _int(max_attempts, "max_attempts", 1, 10_000),
        dedup_key=dedup_key,
        concurrency_key=check_key(concurrency_key, "concurrency_key"),
        depends_on=refs,
        key=check_key(key, "key"),
    )


def is_task_id(value: Any) -> bool:
    """Could a task have this id? (Anything else names no task, without a query.)"""
    return isinstance(value, int) and not isinstance(value, bool) and 0 < value <= MAX_TASK_ID


def check_task_id(value: Any) -> None:
    """`TaskNotFound` for an id no task can have, before any statement takes it; a value
    that is no id at all (a string, say) is `InvalidInput`."""
    if not is_task_id(value):
        check_id_type(value)
        raise TaskNotFound(f"no task with id {value!r}")


def check_id_type(value: Any) -> None:
    """`InvalidInput` unless `value` is an integer (task ids are)."""
    if not isinstance(value, int) or isinstance(value, bool):
        raise InvalidInput(f"a task id is an integer, got {value!r}")


def check_depends_on(value: Any) -> tuple[int | str, ...]:
    """Task ids (positive whole numbers) or batch keys (strings), each named once."""
    if value is None:
        return ()
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence | AbstractSet):
        raise InvalidInput(f"depends_on must be a list of task ids, got {_shown(value)}")
    refs: list[int | str] = []
    for ref in value:
        if isinstance(ref, str):
            refs.append(check_key(ref, "a depends_on key") or "")
        elif is_task_id(ref):
            refs.append(ref)
        else:
            raise InvalidInput(f"depends_on holds {_shown(ref)}, which is not a task id")
    if len(set(refs)) < len(refs):
        raise InvalidInput("depends_on names the same task twice")
    return tuple(refs)


def check_key(value: Any, what: str) -> str | None:
    """A dedup or concurrency key: None, or 1-255 characters of text without NUL."""
    if value is None:
        return None
    if not isinstance(value, str) or not 0 < len(value) <= 255 or "\x00" in value:
        raise InvalidInput(
            f"{what} must be a non-empty string of at most 255 characters, without NUL"
        )
    try:
        value.encode()
    except UnicodeEncodeError:
        raise InvalidInput(f"{what} is not valid UTF-8 text") from None
    return value


def new_task_from_mapping(item: Any, max_payload_bytes: int) -> NewTask:
    """`enqueue_many` items: mappings with `enqueue`'s keyword names plus name/payload."""
    if type(item) is not dict and not isinstance(item, Mapping):
        raise InvalidInput(f"each task must be a mapping, got {type(item).__name__}")
    if not ENQUEUE_KEYS.issuperset(item):
        unknown = set(item) - ENQUEUE_KEYS
        raise InvalidInput(f"unknown task keys: {', '.join(sorted(map(str, unknown)))}")
    if "name" not in item:
        raise InvalidInput("each task needs a 'name'")
    if len(item) <= 2 and (len(item) == 1 or "payload" in item):  # every option its default
        payload = encode_payload(item.get("payload"), max_payload_bytes)
        return NewTask(name=check_name(item["name"]), payload_json=payload)
    options = {k: v for k, v in item.items() if k not in ("name", "payload")}
    return new_task(
        item["name"], item.get("payload"), max_payload_bytes=max_payload_bytes, **options
    )


def purge_args(
    older_than: float | dt.timedelta, statuses: Iterable[TaskStatus | str]
) -> tuple[float, frozenset[TaskStatus]]:
    """`purge`'s age in seconds and its statuses, checked."""
    seconds = older_than.total_seconds() if isinstance(older_than, dt.timedelta) else older_than
    if not isinstance(seconds, int | float) or isinstance(seconds, bool) or seconds != seconds:
        raise InvalidInput(f"the age for purge must be seconds or a timedelta, got {older_than!r}")
    wanted = frozenset(parse_status(s) for s in statuses)
    if not wanted <= FINISHED:
        raise InvalidInput("purge takes only finished statuses: completed, failed, cancelled")
    if not 0 <= seconds <= MAX_DELAY_SECONDS:  # a database cannot subtract more from now
        raise InvalidInput(f"the age for purge must be from 0 to 100 years, got {seconds:g}s")
    return float(seconds), wanted


def parse_status(value: TaskStatus | str) -> TaskStatus:
    """A status given as text or enum; unknown ones are refused naming the choices."""
    try:
        return TaskStatus(value)
    except ValueError:
        choices = ", ".join(s.value for s in TaskStatus)
        raise InvalidInput(f"unknown status {value!r} (one of: {choices})") from None


def check_session(session: object) -> None:
    """Refuse a blocking session: it would write the row, then fail awaiting the result."""
    if not isinstance(session, AsyncSession | AsyncConnection):
        raise InvalidInput(
            f"session must be an AsyncSession or AsyncConnection, got {type(session).__name__}"
            " (a blocking Session goes to taskstore.sync.enqueue_with)"
        )
