"""How the command lines are put together: one duration type, one --database-url, no
import circle, and start-up that imports only what a command uses."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import click
import pytest

from taskstore.cli import main as taskstore_main
from taskstore.cli_common import DATABASE_URL_HELP
from taskstore.dashboard.command import cli_command as dashboard_command
from worker.cli import main as worker_main

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("sqlalchemy", "alembic", "asyncpg", "aiosqlite", "starlette", "uvicorn", "structlog")


def parsed(command: click.Command, args: list[str]) -> dict:
    return command.make_context(command.name or "x", args).params


SPELLINGS = [("30", 30.0), ("30s", 30.0), ("5m", 300.0), ("1h", 3600.0), ("7d", 604800.0)]


@pytest.mark.parametrize(("text", "seconds"), SPELLINGS)
def test_every_duration_option_reads_the_same_spellings(text: str, seconds: float) -> None:
    sub = taskstore_main.commands
    assert parsed(sub["enqueue"], ["a.b", "--delay", text])["delay"] == seconds
    assert parsed(sub["purge"], ["--older-than", text])["older_than"] == seconds
    assert parsed(sub["status"], ["--interval", text])["interval"] == seconds
    worker = parsed(
        worker_main, ["--app", "m", "--lease-seconds", text, "--shutdown-timeout", text]
    )
    assert (worker["lease_seconds"], worker["shutdown_timeout"]) == (seconds, seconds)


def _commands() -> list[click.Command]:
    """Every command that runs something: the two programs, and each subcommand (a group
    of subcommands, like `taskstore queue`, only through its own)."""
    found: list[click.Command] = [taskstore_main, worker_main]
    for command in taskstore_main.commands.values():
        if isinstance(command, click.Group):
            found.extend(command.commands.values())
        else:
            found.append(command)
    return found


def test_database_url_has_one_declaration_shared_by_every_command() -> None:
    for command in _commands():
        [option] = [p for p in command.params if "--database-url" in p.opts]
        assert isinstance(option, click.Option) and option.help == DATABASE_URL_HELP, command.name
    for path in ("taskstore/cli.py", "taskstore/dashboard/command.py", "worker/cli.py"):
        assert '"--database-url"' not in (ROOT / path).read_text(), path


def _imports(path: str) -> set[str]:
    tree = ast.parse((ROOT / path).read_text())
    found = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    return found | {n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}


def test_the_dashboard_command_does_not_import_the_taskstore_cli() -> None:
    assert "taskstore.cli" not in _imports("taskstore/dashboard/command.py")
    assert dashboard_command is taskstore_main.commands["dashboard"]


def loaded_after(code: str, env: dict[str, str] | None = None) -> set[str]:
    """Top-level packages (and taskstore/worker modules) imported by `code` in a fresh
    interpreter; `code` may exit."""
    script = (
        "import atexit, sys\n"
        "atexit.register(lambda: sys.__stderr__.write('\\nMODULES ' + ' '.join(sys.modules)))\n"
        + code
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=60
    )
    names = result.stderr.rpartition("MODULES ")[2].split()
    return {n if n.startswith(("taskstore", "worker")) else n.split(".")[0] for n in names}


def test_help_imports_no_database_library() -> None:
    for code in (
        "from taskstore.cli import main; main(['--help'])",
        "from taskstore.cli import main; main(['enqueue', '--help'])",
        "from worker.cli import main; main(['--help'])",
    ):
        loaded = loaded_after(code)
        assert not loaded & set(HEAVY), (code, loaded & set(HEAVY))
        assert "worker.runner" not in loaded and "taskstore.store" not in loaded


def test_status_on_sqlite_imports_neither_alembic_nor_the_dashboard_nor_the_worker(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path / 'x.db'}"
    code = f"from taskstore.cli import main; main(['--database-url', {url!r}, 'migrate'])"
    assert "alembic" in loaded_after(code)  # migrate does need it
    loaded = loaded_after(
        f"from taskstore.cli import main; main(['--database-url', {url!r}, 'status'])"
    )
    assert "taskstore.store" in loaded  # it did run
    unused = {"alembic", "starlette", "uvicorn", "taskstore.dashboard.app", "worker"}
    assert not loaded & unused, loaded & unused


def test_a_command_collects_garbage_again_once_its_start_up_is_over() -> None:
    """Start-up runs without the collector (it would walk SQLAlchemy's objects for
    nothing); the command's run, and its caller afterwards, collect as ever."""
    import gc

    from taskstore.cli_common import Command, run_guarded

    seen: list[bool] = []

    async def run() -> None:
        seen.append(gc.isenabled())

    @click.command(cls=Command)
    def probe() -> None:
        seen.append(gc.isenabled())
        run_guarded(run)

    with pytest.raises(SystemExit) as done:
        probe.main([], prog_name="taskstore")
    assert done.value.code == 0
    assert seen == [False, True] and gc.isenabled()
