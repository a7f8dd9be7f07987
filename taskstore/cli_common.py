"""What the `taskstore`, `taskstore dashboard` and `taskstore-worker` commands share.

The one declaration of ``--database-url``, the one-line error printer (`fail`), the guard
that turns any failure of a command's coroutine into such a line (`run_guarded`), the
duration option type, and click classes whose usage errors are one line too.

Only click and the standard library are imported here: every command line loads this
module first, and ``--help`` must not pay for SQLAlchemy.
"""

from __future__ import annotations

import errno
import functools
import json
import os
import sys
from collections.abc import Awaitable, Callable
from typing import Any, NoReturn, TypeVar

import click

from taskstore import collector

R = TypeVar("R")
PROGRAMS = ("taskstore", "taskstore-worker")
DATABASE_URL_HELP = "Database URL (default: TASKSTORE_DATABASE_URL, then the settings chain)."
# click >= 8.2 raises this for a bare `taskstore`; older versions print the help themselves.
_NO_ARGS_IS_HELP = getattr(click.exceptions, "NoArgsIsHelpError", ())
INTERRUPTED = 130  # 128 + SIGINT, what a shell reports for a process stopped by Ctrl-C


def program_name() -> str:
    """``taskstore`` or ``taskstore-worker``: whose error line this is."""
    ctx = click.get_current_context(silent=True)
    name = ctx.find_root().command.name if ctx is not None else None
    return name if name in PROGRAMS else "taskstore"


def fail(message: str, code: int) -> NoReturn:
    """One line on stderr, prefixed with the program's name, then exit with `code`."""
    click.echo(f"{program_name()}: error: {message}", err=True)
    sys.exit(code)


def run_guarded(coro_fn: Callable[[], Awaitable[R]], *, interrupted_exit: int | None = None) -> R:
    """Run a coroutine; turn every failure into one line on stderr and an exit code.

    Ctrl-C prints "interrupted" and exits 130, unless `interrupted_exit` is given: then
    being interrupted is the command's normal end (a ``--watch``) and it exits quietly.
    """
    import asyncio  # here, not at the top: asyncio alone costs --help a twentieth of a second

    from taskstore.errors import TaskStoreError

    # Start-up is over: the collector, paused for it, runs again, but off everything
    # imported so far, which lives as long as the process. Its passes over SQLAlchemy's
    # object graph otherwise cost the hot loop, and a quarter of a second at exit.
    collector.resume()
    try:
        return asyncio.run(coro_fn())  # type: ignore[arg-type]
    except TaskStoreError as exc:
        fail(str(exc), exc.exit_code)
    except KeyboardInterrupt:
        if interrupted_exit is not None:
            sys.exit(interrupted_exit)
        fail("interrupted", INTERRUPTED)
    except click.Abort:  # Ctrl-C or end of input at a confirmation prompt
        fail("aborted", 1)
    except Exception as exc:  # the promise is: no traceback reaches the user
        if os.environ.get("TASKSTORE_DEBUG"):
            raise
        first = (str(exc).strip().splitlines() or [""])[0]
        fail(f"unexpected {type(exc).__name__}: {first} (set TASKSTORE_DEBUG=1 for details)", 1)


def database_url_option(fn: Callable[..., R]) -> Callable[..., R]:
    """Add ``--database-url``; the command gets the URL as its first argument.

    On a subcommand the option may also come before it (``taskstore --database-url URL
    status``); None means the settings chain (``TASKSTORE_DATABASE_URL`` first).
    """

    @click.option(
        "--database-url", "database_url", default=None, metavar="URL", help=DATABASE_URL_HELP
    )
    @functools.wraps(fn)
    def wrapper(*args: Any, database_url: str | None, **kwargs: Any) -> R:
        ctx = click.get_current_context()
        given = [database_url, ctx.find_root().params.get("database_url")]
        if any(url is not None and not url.strip() for url in given):
            # an unset shell variable, most often: not a reason to use the default database
            fail("--database-url is empty", 2)
        url = given[0] or given[1]
        return fn(url, *args, **kwargs)

    return wrapper


def emit_json(document: Any) -> None:
    """One JSON document on stdout, nothing else."""
    click.echo(json.dumps(document, indent=2, default=str))


class TaskIdType(click.ParamType):
    """A task id: a whole number from 1 (said so, not as click's 'integer range')."""

    name = "id"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        try:
            task_id = int(value)
        except (TypeError, ValueError):
            task_id = 0
        if task_id < 1:
            self.fail(f"{value!r} is not a task id (a whole number from 1)", param, ctx)
        return task_id


class Duration(click.ParamType):
    """A click type for durations (see `taskstore.durations`): seconds, at least `minimum`."""

    name = "duration"

    def __init__(self, minimum: float = 0.0) -> None:
        self.minimum = minimum

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> float:
        if isinstance(value, int | float):
            seconds = float(value)
        else:
            from taskstore.durations import parse_duration
            from taskstore.errors import InvalidInput

            try:
                seconds = parse_duration(value)
            except InvalidInput as exc:
                self.fail(str(exc), param, ctx)
        if seconds < self.minimum:
            self.fail(f"{value!r} is shorter than the minimum of {self.minimum:g}s", param, ctx)
        return seconds


class OneLineErrors:
    """Mixin for click commands: usage errors are one ``PROGRAM: error: ...`` line too."""

    def main(self, args: Any = None, prog_name: str | None = None, **extra: Any) -> Any:
        collector.pause()  # for the start-up; `run_guarded` resumes it
        try:
            return self._main(args, prog_name, **extra)
        finally:  # run in-process (a test, Django's call_command): the caller's collector
            collector.resume(freeze=False)

    def _main(self, args: Any, prog_name: str | None, **extra: Any) -> Any:
        extra["standalone_mode"] = False
        try:
            result = super().main(args, prog_name, **extra)  # type: ignore[misc]
        except _NO_ARGS_IS_HELP as exc:
            exc.show()
            sys.exit(exc.exit_code)
        except click.UsageError as exc:
            where = f" (see '{_command_path(exc.ctx)} --help')" if exc.ctx else ""
            _fail_as(self, f"{_reworded(exc)}{where}", exc.exit_code)
        except click.ClickException as exc:
            _fail_as(self, exc.format_message(), exc.exit_code)
        except click.Abort as exc:  # click turns Ctrl-C (and end of input at a prompt) into it
            if isinstance(exc.__cause__, KeyboardInterrupt):
                _fail_as(self, "interrupted", INTERRUPTED)
            _fail_as(self, "aborted", 1)
        except OSError as exc:
            if exc.errno != errno.EPIPE:  # the reader of our output went away: say nothing
                raise
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - nothing may flush into the pipe
            sys.exit(1)
        sys.exit(result if isinstance(result, int) else 0)


#: `extra_hint`s of the commands that take one task id
ONE_TASK = "one TASK_ID at a time"
ONE_TASK_OR_FAILED = "one TASK_ID at a time, or --failed for every failed task"

#: options other tools take a database URL with; click would guess at a name like them
URL_OPTIONS = ("--url", "--dsn", "--db", "--database", "--db-url")


def _reworded(exc: click.UsageError) -> str:
    """Click's message, but `--url` and its like are pointed to `--database-url`, where
    click would suggest an option that only looks like them (``--burst``), and a stray
    positional value is followed by the command's `extra_hint`."""
    if isinstance(exc, click.NoSuchOption) and exc.option_name in URL_OPTIONS:
        return (
            f"No such option '{exc.option_name}': the database URL goes in --database-url "
            "(or TASKSTORE_DATABASE_URL)."
        )
    message = exc.format_message()
    hint = getattr(exc.ctx.command, "extra_hint", None) if exc.ctx else None
    if hint and message.startswith("Got unexpected extra argument"):
        return f"{message}: {hint}"
    return message


def _command_path(ctx: click.Context) -> str:
    """``taskstore enqueue``, also when run as ``python -m taskstore.cli enqueue``."""
    names = []
    while ctx.parent is not None:
        names.append(ctx.info_name or "")
        ctx = ctx.parent
    names.append(ctx.command.name if ctx.command.name in PROGRAMS else ctx.info_name or "")
    return " ".join(reversed(names))


def _fail_as(command: Any, message: str, code: int) -> NoReturn:
    # No click context is current any more: name the program from the command itself.
    name = command.name if command.name in PROGRAMS else "taskstore"
    click.echo(f"{name}: error: {message}", err=True)
    sys.exit(code)


class Group(OneLineErrors, click.Group):
    """A click group with one-line usage errors."""


class Command(OneLineErrors, click.Command):
    """A click command with one-line usage errors; `extra_hint` follows the error of a
    stray positional argument (say, where that value belongs)."""

    def __init__(self, *args: Any, extra_hint: str | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.extra_hint = extra_hint

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        given = list(args)  # click's parser consumes the list it is given
        try:
            return super().parse_args(ctx, args)
        except click.MissingParameter:
            # `taskstore-worker app.tasks`: the stray value is the mistake to name, and
            # the hint says which option it belongs to.
            if self.extra_hint and (stray := self._stray(ctx, given)):
                ctx.fail(f"Got unexpected extra argument ({' '.join(stray)})")
            raise

    def _stray(self, ctx: click.Context, args: list[str]) -> list[str]:
        """The positional values left over once options and arguments took theirs."""
        try:
            _, left, _ = self.make_parser(ctx).parse_args(args=args)
        except click.UsageError:
            return []
        return left
