"""Security: passwords stay out of logs, errors, output and process titles; no pickle;
SQL only with bound parameters (see SECURITY.md for the threat model).

A password only exists in PostgreSQL URLs (SQLite URLs are file paths), so the tests that
need a reachable server with one are PostgreSQL-only; the server trusts local
connections, so the password is carried along but never checked.
"""

from __future__ import annotations

import ast
import subprocess
import traceback
from pathlib import Path

import anyio
import pytest
from click.testing import CliRunner
from sqlalchemy.engine import make_url

from taskstore import TaskStore
from taskstore.cli import main
from taskstore.errors import TaskStoreError
from tests.helpers.faults import (
    Fleet,
    admin_connect,
    terminate_worker_connections,
    wait_exit,
    wait_until,
)
from tests.helpers.processes import ROOT, stderr_of

pytestmark = pytest.mark.fault

SECRET = "SECRETPW"
UNREACHABLE = f"postgresql://u:{SECRET}@127.0.0.1:1/db"
PRODUCT = ("taskstore", "worker", "migrations")
SQL_CALLS = {"text", "execute", "exec_driver_sql", "executemany", "executescript"}
SQL_CALLS |= {"fetch", "fetchrow", "fetchval", "scalar", "scalars"}
SERIALISERS = {"pickle", "cPickle", "_pickle", "dill", "cloudpickle", "shelve", "marshal"}


def _with_password(url: str) -> str:
    return make_url(url).set(password=SECRET).render_as_string(hide_password=False)


def _python_files() -> list[Path]:
    return [p for folder in PRODUCT for p in sorted((ROOT / folder).rglob("*.py"))]


# ------------------------------------------------------------------ passwords
async def test_an_unreachable_databases_password_is_never_logged_by_a_worker(
    tmp_path: Path,
) -> None:
    log = tmp_path / "exec.log"
    [worker] = Fleet(UNREACHABLE, 1, log).start().procs  # the URL travels in the environment
    assert await wait_exit(worker) == 1
    errors = stderr_of(log)
    assert "cannot reach the database" in errors and "u:***@" in errors, errors
    assert SECRET not in errors


async def test_errors_mask_the_password() -> None:
    refusals: list[BaseException] = []
    for url in (UNREACHABLE, f"mysql://u:{SECRET}@127.0.0.1/db"):
        try:
            async with TaskStore.from_url(url):
                pass
        except TaskStoreError as exc:
            refusals.append(exc)
    assert len(refusals) == 2
    for exc in refusals:
        shown = "".join(traceback.format_exception(exc)) + repr(exc)
        assert "***" in str(exc) and SECRET not in shown, shown


def test_cli_output_and_help_never_show_the_password() -> None:
    runner = CliRunner()
    env = {"TASKSTORE_DATABASE_URL": UNREACHABLE}
    results = [
        runner.invoke(main, ["status"], env=env),
        runner.invoke(main, ["--database-url", UNREACHABLE, "status", "--json"]),
        runner.invoke(main, ["status", "--help"], env=env),
        runner.invoke(main, ["--help"], env=env),
    ]
    for result in results:
        assert SECRET not in result.stdout + result.stderr, result.stdout + result.stderr
    assert results[0].exit_code == 1 and "u:***@" in results[0].stderr


@pytest.mark.parametrize("backend", [pytest.param("postgres", marks=pytest.mark.postgres)])
def test_status_and_migrate_against_a_live_server_never_show_the_password(db_url: str) -> None:
    url = _with_password(db_url)
    runner = CliRunner()
    for command in (["migrate"], ["status"], ["status", "--json"], ["list", "--json"]):
        result = runner.invoke(main, ["--database-url", url, *command])
        assert result.exit_code == 0, result.stderr
        assert SECRET not in result.stdout + result.stderr
    assert "***@" in runner.invoke(main, ["--database-url", url, "migrate"]).stdout


def _process_titles(pid: int) -> str:
    """The command line `ps` shows for a process and its children."""
    shown = subprocess.run(
        ["ps", "-o", "args=", "--pid", str(pid), "--ppid", str(pid)],
        capture_output=True,
        text=True,
        check=False,
    ).stdout
    cmdline = Path(f"/proc/{pid}/cmdline")
    return shown + (cmdline.read_bytes().decode(errors="replace") if cmdline.exists() else "")


@pytest.mark.parametrize("backend", [pytest.param("postgres", marks=pytest.mark.postgres)])
async def test_a_running_worker_keeps_the_password_out_of_its_title_and_logs(
    store: TaskStore, db_url: str, tmp_path: Path
) -> None:
    log = tmp_path / "exec.log"
    fleet = Fleet(_with_password(db_url), 1, log, ("--lease-seconds", "3")).start()
    [worker] = fleet.procs
    try:
        task_id = await store.enqueue("faulty.noop")

        async def done() -> bool:
            return (await store.require(task_id)).status == "completed"

        await wait_until(done)
        titles = _process_titles(worker.pid)
        admin = await admin_connect(db_url)  # errors get logged: make some
        try:
            await terminate_worker_connections(admin)
        finally:
            await admin.close()
        # That killed this test's own pooled connection too (same application name): give
        # the driver a moment to see its socket closed, so the pool swaps it on checkout.
        await anyio.sleep(0.2)
        await store.enqueue("faulty.noop")
    finally:
        codes = await fleet.stop()
    assert "worker.cli" in titles and SECRET not in titles, titles
    assert list(codes.values()) == [0]
    assert SECRET not in stderr_of(log)


# --------------------------------------------------------------- source scans
def _imported(node: ast.AST) -> list[str]:
    """Modules an import statement, __import__() or import_module() call names."""
    if isinstance(node, ast.Import):
        return [alias.name.split(".")[0] for alias in node.names]
    if isinstance(node, ast.ImportFrom):
        return [(node.module or "").split(".")[0]]
    if isinstance(node, ast.Call) and _call_name(node) in ("__import__", "import_module"):
        return [a.value for a in node.args[:1] if isinstance(a, ast.Constant)]
    return []


def test_no_pickle_or_other_code_executing_serialiser_is_imported() -> None:
    found = [
        f"{path.relative_to(ROOT)}:{node.lineno}"
        for path in _python_files()
        for node in ast.walk(ast.parse(path.read_text(), str(path)))
        if SERIALISERS & set(_imported(node))
    ]
    assert not found, found


def _formatted(node: ast.AST) -> bool:
    """An f-string, a %-format, a .format() call, or a concatenation holding one."""
    if isinstance(node, ast.JoinedStr):
        return any(isinstance(v, ast.FormattedValue) for v in node.values)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mod):
        return isinstance(node.left, ast.Constant | ast.JoinedStr)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        return _formatted(node.left) or _formatted(node.right)
    return (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "format"
    )


def _call_name(node: ast.Call) -> str:
    func = node.func
    return func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")


def test_sql_is_never_built_by_string_formatting() -> None:
    found = [
        f"{path.relative_to(ROOT)}:{node.lineno}"
        for path in _python_files()
        for node in ast.walk(ast.parse(path.read_text(), str(path)))
        if isinstance(node, ast.Call) and _call_name(node) in SQL_CALLS
        if node.args and _formatted(node.args[0])
    ]
    assert not found, f"SQL built with string formatting (bind parameters instead): {found}"


def test_the_scan_itself_catches_formatted_sql() -> None:
    """The scanner is only worth something if it flags what it looks for."""
    bad = 'conn.execute(text(f"SELECT {x}"))\ncur.execute("SELECT %s" % x)\ntext("a {}".format(x))'
    calls = [n for n in ast.walk(ast.parse(bad)) if isinstance(n, ast.Call)]
    flagged = [c for c in calls if _call_name(c) in SQL_CALLS and c.args and _formatted(c.args[0])]
    assert len(flagged) == 3
