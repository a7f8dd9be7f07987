"""`taskstore enqueue`: one task, or many from JSON lines (a file or stdin).

The payload comes inline (``--payload '{"a": 1}'``), from a file (``--payload @FILE``) or
from stdin (``--payload -``). ``--jsonl FILE|-`` reads one payload per line: every line is
checked before anything is written, then the tasks go in chunks of `CHUNK` per round trip,
all in one transaction, so a failure leaves nothing from the file behind. When workers
are up but none would run what went in (its queue is not theirs, or its name is a near
miss of a handler's), or its queue is paused, a note on stderr says so.
"""

from __future__ import annotations

import contextlib
import difflib
import json
import re
import sys
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

import click

from taskstore.cli_common import (
    Command,
    Duration,
    TaskIdType,
    database_url_option,
    emit_json,
    fail,
)

if TYPE_CHECKING:
    from taskstore.store import TaskStore

CHUNK = 1000  # tasks per round trip: enqueue_many of 1,000 is one INSERT


#: the store's argument names in its messages, as this command's options spell them
_FLAGS = re.compile(r"\b(depends_on|dedup_key|concurrency_key|max_attempts|priority)\b")


def as_flags(message: str) -> str:
    """A store error reworded for the command line: ``max_attempts must be`` reads
    ``--max-attempts must be``."""
    return _FLAGS.sub(lambda m: "--" + m.group(1).replace("_", "-"), message)


class PayloadError(ValueError):
    """A payload that is not a JSON object (the message names the problem)."""


def parse_payload(text: str) -> dict[str, Any]:
    """A JSON object; NaN/Infinity, other JSON values and non-JSON are refused."""

    def no_constants(name: str) -> Any:
        raise PayloadError(f"payload is not valid JSON: {name} is not allowed")

    try:
        payload = json.loads(text, parse_constant=no_constants)
    except json.JSONDecodeError as exc:
        where = str(exc) if "\n" in text.strip() else f"{exc.msg} at column {exc.colno}"
        raise PayloadError(f"payload is not valid JSON: {where}") from None
    if not isinstance(payload, dict):
        raise PayloadError(f"payload must be a JSON object, got {type(payload).__name__}")
    return payload


def read_source(source: str, what: str) -> str:
    """Text of ``-`` (stdin) or a file path; an unreadable file is one line, exit 2."""
    if source == "-":
        return sys.stdin.read()
    try:
        with open(source, encoding="utf-8") as handle:
            return handle.read()
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        fail(f"cannot read {what} {source}: {reason}", 2)


def payload_text(option: str | None) -> str | None:
    """``--payload``'s JSON: inline, ``@FILE`` or ``-`` (stdin)."""
    if option is None:
        return None
    if option == "-":
        return read_source("-", "the payload")
    if option.startswith("@"):
        return read_source(option[1:], "payload file")
    return option


def jsonl_payloads(text: str) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, payload) for every non-blank line; a bad one names its line."""
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            yield number, parse_payload(line)
        except PayloadError as exc:
            fail(f"line {number}: {exc}", 2)


def checked_items(
    name: str, text: str, options: dict[str, Any], limit: int
) -> list[dict[str, Any]]:
    """`enqueue_many` items for every line, each validated before anything is written."""
    from taskstore.errors import TaskStoreError
    from taskstore.validation import new_task, new_task_from_mapping

    try:  # the name and options once, so their errors do not blame line 1
        new_task(name, {}, max_payload_bytes=limit, **options)
    except TaskStoreError as exc:
        fail(as_flags(str(exc)), exc.exit_code)
    items = []
    for number, payload in jsonl_payloads(text):
        item = {"name": name, "payload": payload, **options}
        try:
            new_task_from_mapping(item, limit)
        except TaskStoreError as exc:
            fail(f"line {number}: {exc}", exc.exit_code)
        items.append(item)
    return items


async def enqueue_chunks(store: TaskStore, items: list[dict[str, Any]]) -> list[int]:
    """All items in one transaction, `CHUNK` per round trip; ids in line order."""
    ids: list[int] = []
    with _flags_in_errors():
        async with store.sessions() as session, session.begin():
            for start in range(0, len(items), CHUNK):
                ids += await store.enqueue_many(items[start : start + CHUNK], session=session)
    return ids


@click.command(cls=Command, extra_hint="the payload goes in --payload JSON")
@click.argument("name", required=False, metavar="NAME")
@click.option(
    "--payload",
    default=None,
    metavar="JSON|@FILE|-",
    help="JSON object of keyword arguments; @FILE reads it from a file, - from stdin.",
)
@click.option(
    "--jsonl",
    default=None,
    metavar="FILE|-",
    help="Enqueue one task NAME per line of FILE (- for stdin), each line its JSON payload. "
    "Prints the ids one per line. Nothing is written if any line is bad.",
)
@click.option("--queue", default="default", show_default=True)
@click.option("--priority", default=0, type=int, show_default=True, help="Higher runs first.")
@click.option(
    "--delay",
    default=None,
    type=Duration(),
    metavar="DURATION",
    help="Run no earlier than this from now: 30 (seconds), 30s, 5m, 1h, 7d.",
)
@click.option("--max-attempts", default=None, type=int)
@click.option("--dedup-key", default=None)
@click.option(
    "--concurrency-key",
    default=None,
    help="Tasks sharing it run at most the queue's key concurrency at once.",
)
@click.option(
    "--depends-on",
    "depends_on",
    multiple=True,
    type=TaskIdType(),
    metavar="ID",
    help="Run only once task ID has completed (cancelled if it fails). Repeatable.",
)
@click.option("--json", "as_json", is_flag=True, help='Print {"id": ...} (--jsonl: a list).')
@database_url_option
def enqueue(
    url: str | None,
    name: str | None,
    payload: str | None,
    jsonl: str | None,
    as_json: bool,
    depends_on: tuple[int, ...],
    **options: Any,
) -> None:
    """Enqueue task NAME; prints the new task's id."""
    from taskstore.cli_store import command_settings, with_store

    if name is None:  # with --jsonl, a line may look like a whole task: say what it is
        what = "every --jsonl line is a payload for it" if jsonl is not None else "the task's name"
        raise click.UsageError(f"Missing argument 'NAME': {what}.", click.get_current_context())
    if depends_on:
        options["depends_on"] = list(depends_on)
    limit = command_settings(url).max_payload_bytes
    if jsonl is not None:
        ids, note = _enqueue_lines(url, name, jsonl, payload, options, limit)
        emit_json(ids) if as_json else click.echo("\n".join(map(str, ids)), nl=bool(ids))
        _say(note)
        return
    body = _checked_payload(name, payload_text(payload), options, limit)

    async def go(store: TaskStore) -> tuple[int, str]:
        task_id = await _enqueue_one(store, name, body, options)
        return task_id, await enqueue_note(store, options["queue"], name, f"task {task_id}")

    task_id, note = with_store(url, go, may_create=True)
    emit_json({"id": task_id}) if as_json else click.echo(task_id)
    _say(note)


def _say(note: str) -> None:
    if note:
        click.echo(note, err=True)


def _checked_payload(
    name: str, text: str | None, options: dict[str, Any], limit: int
) -> dict[str, Any]:
    """The payload, validated with the task before connecting: bad input never touches
    the database."""
    from taskstore import validation
    from taskstore.errors import TaskStoreError

    try:
        body = {} if text is None else parse_payload(text)
        validation.new_task(name, body, max_payload_bytes=limit, **options)
    except PayloadError as exc:
        fail(str(exc), 2)
    except TaskStoreError as exc:
        fail(as_flags(str(exc)), exc.exit_code)
    return body


async def _enqueue_one(store: TaskStore, name: str, body: Any, options: dict[str, Any]) -> int:
    with _flags_in_errors():
        return await store.enqueue(name, body, **options)


async def enqueue_note(store: TaskStore, queue: str, name: str, what: str) -> str:
    """A note when what was just enqueued will not start soon: its queue is paused, or
    workers are up but none would run it (its queue is not theirs, or its name is a near
    miss of a handler's: a typo). Quiet with no worker up (enqueueing before the workers
    start is normal) and for other unknown names (a worker may find its handler only
    when it claims one, as Django's do). The tasks are committed by now: a failure to
    read is no note, never an error."""
    try:
        async with store.reading() as conn:
            settings = await store.flow.get(conn, queue)
            queues, names = await store.worker_registry.served(conn)
    except Exception:  # an error here would hide the id of a task that exists
        return ""
    if settings is not None and settings.paused:
        return f"note: queue {queue} is paused: {what} waits until it is resumed"
    if queues and queue not in queues:
        served = ", ".join(sorted(queues))
        return (
            f"note: no live worker serves queue {queue} (they serve: {served}); "
            f"{what} waits until one does (--queue chooses the queue)"
        )
    near = _near_miss(name, names) if queues and name not in names else None
    if near:
        return f"note: no live worker has a handler named {name}: did you mean {near}?"
    return ""


def _near_miss(name: str, names: Iterable[str]) -> str | None:
    """The handler `name` is most likely a typo of: a near function in the same module,
    or the same function in a near module. (Whole names alike are no sign: handlers of
    one module share most of their letters, a new one and an old one too.)"""
    module, function = _parts(name)
    best, score = None, 0.8
    for other in sorted(names):
        o_module, o_function = _parts(other)
        if o_module == module:
            ratio = difflib.SequenceMatcher(None, function, o_function).ratio()
        elif o_function == function:
            ratio = difflib.SequenceMatcher(None, module, o_module).ratio()
        else:
            continue
        if ratio >= score:
            best, score = other, ratio
    return best


def _parts(name: str) -> tuple[str, str]:
    """(module, function) of a handler name: ``pkg.mod.fn`` or ``pkg.mod:fn``."""
    cut = max(name.rfind("."), name.rfind(":"))
    return name[:cut], name[cut + 1 :]


@contextlib.contextmanager
def _flags_in_errors() -> Iterator[None]:
    """Reword what only the database can refuse (a dependency that is not there)."""
    from taskstore.errors import InvalidInput

    try:
        yield
    except InvalidInput as exc:
        raise InvalidInput(as_flags(str(exc))) from None


def _enqueue_lines(
    url: str | None,
    name: str,
    source: str,
    payload: str | None,
    options: dict[str, Any],
    limit: int,
) -> tuple[list[int], str]:
    """The ids of the lines' tasks, and a note if no live worker would run them."""
    from taskstore.cli_store import with_store

    if payload is not None:
        fail("give --payload or --jsonl, not both", 2)
    if options.get("dedup_key") is not None:
        fail("--dedup-key cannot be used with --jsonl (every line would share it)", 2)
    items = checked_items(name, read_source(source, "JSON lines file"), options, limit)
    if not items:
        return [], ""

    async def go(store: TaskStore) -> tuple[list[int], str]:
        ids = await enqueue_chunks(store, items)
        what = f"each of these {len(ids)} tasks" if len(ids) > 1 else f"task {ids[0]}"
        return ids, await enqueue_note(store, options["queue"], name, what)

    return with_store(url, go, may_create=True)
