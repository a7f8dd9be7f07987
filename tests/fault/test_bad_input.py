"""Bad input: every refusal is one clear line, and nothing is written.

Through the CLI (in-process with click's runner, and a few real `python -m taskstore.cli`
processes) and through the Python API: payloads that are not JSON objects or are too big,
invalid or hostile task and queue names, invalid cron expressions, payloads that do not
fit the handler, malformed and unreachable database URLs, and a schema older than the
code.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

import tests.apps.faulty  # noqa: F401 - registers the faulty.* handlers in this process
from taskstore import TaskStatus, TaskStore
from taskstore.cli import main
from taskstore.errors import ConfigError, DatabaseUnavailable, InvalidInput, SchemaOutOfDate
from taskstore.schema import REVISIONS, upgrade
from tests.conftest import create_pg_database, drop_pg_database
from tests.helpers.processes import ROOT
from worker.registry import RegistrationError, Registry, registry, task
from worker.runner import Worker, WorkerConfig

pytestmark = pytest.mark.fault

INJECTION_NAME = "faulty.noop'; DROP TABLE taskstore_tasks; --"
INJECTION_QUEUE = "q'); DELETE FROM taskstore_tasks; --"
LIMIT_ENV = {"TASKSTORE_MAX_PAYLOAD_BYTES": "100"}


def one_line_error(stderr: str) -> str:
    """The single 'taskstore: error: ...' line a refusal prints, and nothing else."""
    lines = stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("taskstore: error: "), stderr
    return lines[0]


async def _rows(url: str) -> int:
    async with TaskStore.from_url(url) as store:
        return sum(n for s in await store.stats() for n in s.counts.values())


def rows(url: str) -> int:
    return asyncio.run(_rows(url))


def cli(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args), env=env)
    assert result.exception is None or isinstance(result.exception, SystemExit), result
    return result.exit_code, result.stdout, result.stderr


# ------------------------------------------------------------------- CLI enqueue
CLI_REFUSALS = {
    "text": (["faulty.noop", "--payload", "not json"], "not valid JSON"),
    "list": (["faulty.noop", "--payload", "[1, 2]"], "must be a JSON object"),
    "nan": (["faulty.noop", "--payload", '{"x": NaN}'], "NaN is not allowed"),
    "infinity": (["faulty.noop", "--payload", '{"x": 1e999}'], "Infinity"),
    "too-big": (["faulty.noop", "--payload", '{"x": "' + "a" * 200 + '"}'], "over the limit"),
    "injected-name": (["--", INJECTION_NAME], "invalid task name"),
    "injected-queue": (["faulty.noop", "--queue", INJECTION_QUEUE], "invalid queue name"),
    "newline-name": (["--", "faulty.noop\nDROP"], "invalid task name"),
    "empty-name": (["--", ""], "invalid task name"),
    "upper-queue": (["faulty.noop", "--queue", "Default"], "invalid queue name"),
    "long-queue": (["faulty.noop", "--queue", "q" * 65], "invalid queue name"),
    "priority": (["faulty.noop", "--priority", "99999"], "priority"),
    "attempts": (["faulty.noop", "--max-attempts", "0"], "--max-attempts must be"),
    "delay": (["faulty.noop", "--delay", "-1"], "delay"),
}


@pytest.mark.parametrize("case", CLI_REFUSALS)
def test_cli_enqueue_refuses_bad_input_in_one_line_and_writes_nothing(
    db_url: str, case: str
) -> None:
    args, problem = CLI_REFUSALS[case]
    code, out, err = cli("--database-url", db_url, "enqueue", *args, env=LIMIT_ENV)
    assert (code, out) == (2, "")
    assert problem in one_line_error(err)
    assert rows(db_url) == 0


def test_real_cli_processes_refuse_bad_input_without_a_traceback(db_url: str) -> None:
    async def run(*args: str) -> tuple[int, str]:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "taskstore.cli", "--database-url", db_url, "enqueue", *args,
            cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        out, err = await proc.communicate()
        assert out == b""
        return proc.returncode or 0, one_line_error(err.decode())

    async def all_cases() -> list[tuple[int, str]]:
        return await asyncio.gather(
            run("faulty.noop", "--payload", '{"x": NaN}'),
            run("--", INJECTION_NAME),
            run("faulty.noop", "--queue", INJECTION_QUEUE),
        )

    results = asyncio.run(all_cases())
    assert [code for code, _ in results] == [2, 2, 2], results
    assert rows(db_url) == 0


# ------------------------------------------------------------------- Python API
class Opaque:
    """An arbitrary object: not JSON."""


API_PAYLOADS: dict[str, Any] = {
    "bytes": {"x": b"raw"},
    "set": {"x": {1, 2}},
    "nan": {"x": float("nan")},
    "infinity": {"x": [float("inf")]},
    "object": {"x": Opaque()},
    "int-key": {1: "one"},
    "not-a-mapping": [("x", 1)],
    "string": "x=1",
    "too-big": {"x": "a" * 200},
}


MULTILINE_PLACE = {
    "newline-key": pytest.param(
        {"x\ny": {1: "one"}},
    )
}


@pytest.mark.parametrize(
    "payload",
    [*API_PAYLOADS.values(), *MULTILINE_PLACE.values()],
    ids=[*API_PAYLOADS, *MULTILINE_PLACE],
)
async def test_api_enqueue_refuses_payloads_that_are_not_json_objects(
    db_url: str, payload: Any
) -> None:
    async with TaskStore.from_url(db_url, env=LIMIT_ENV) as store:
        with pytest.raises(InvalidInput):  # one bad item: none of the batch is written
            await store.enqueue_many(
                [{"name": "faulty.noop"}, {"name": "faulty.noop", "payload": payload}]
            )
        with pytest.raises(InvalidInput) as refused:
            await store.enqueue("faulty.noop", payload)
        assert "\n" not in str(refused.value), str(refused.value)
        assert sum(n for s in await store.stats() for n in s.counts.values()) == 0


API_OPTIONS: dict[str, tuple[str, dict[str, Any]]] = {
    "injected-name": (INJECTION_NAME, {}),
    "injected-queue": ("faulty.noop", {"queue": INJECTION_QUEUE}),
    "name-not-str": (b"faulty.noop", {}),  # type: ignore[dict-item]
    "priority-bool": ("faulty.noop", {"priority": True}),
    "delay-and-run_at": ("faulty.noop", {"delay": 1, "run_at": object()}),
    "dedup-empty": ("faulty.noop", {"dedup_key": ""}),
}


@pytest.mark.parametrize("case", API_OPTIONS)
async def test_api_enqueue_refuses_bad_names_and_options(store: TaskStore, case: str) -> None:
    name, options = API_OPTIONS[case]
    with pytest.raises(InvalidInput):
        await store.enqueue(name, {}, **options)
    assert await store.stats() == []


CRONS = [
    "not a cron",
    "61 * * * *",
    "* * * *",
    "",
    "*/0 * * * *",
    "* * * * * * * *",
    "* * * * * * *",  # croniter's 7th field, a year, is not offered
    pytest.param("0 0 31 2 *"),
]


@pytest.mark.parametrize("cron", CRONS)
def test_an_invalid_cron_expression_is_a_registration_error(cron: str) -> None:
    async def tick(ctx: object) -> None: ...

    with pytest.raises(RegistrationError, match="cron"):
        task(name="faulty.tick", cron=cron, registry=Registry())(tick)


async def test_a_payload_that_does_not_fit_the_handler_fails_once_with_wrong_arguments(
    store: TaskStore,
) -> None:
    bad = [{"wrong": 1}, {}, {"count": 1, "extra": 2}]
    ids = await store.enqueue_many([{"name": "faulty.strict", "payload": p} for p in bad])
    config = WorkerConfig(queues={"default": None}, burst=True, lease_seconds=5)
    await Worker(store, registry, config).run()
    for task_id in ids:
        info = await store.require(task_id)
        assert (info.status, info.attempts) == (TaskStatus.FAILED, 1)  # max_attempts=5
        assert info.error["type"] == "worker.errors.WrongArguments", info.error


# ------------------------------------------------------------- database URLs
MALFORMED_URLS = {
    "not-a-url": ("not a url", "invalid database URL"),
    "scheme": ("mysql://u:pw@127.0.0.1/db", "unsupported database URL scheme"),
    "no-database": ("postgresql://u@127.0.0.1", "names no database"),
}
MALFORMED_BUGGY = {
    "port-text": "postgresql://u:pw@127.0.0.1:notaport/db",
    "port-range": "postgresql://u:pw@127.0.0.1:99999/db",
    "bracket": "postgresql://u:pw@[::1/db",
}


@pytest.mark.parametrize("case", MALFORMED_URLS)
def test_a_malformed_database_url_is_a_one_line_config_error(case: str) -> None:
    url, problem = MALFORMED_URLS[case]
    with pytest.raises(ConfigError, match=problem):
        TaskStore.from_url(url)
    for command in (["enqueue", "faulty.noop"], ["status"]):
        code, out, err = cli("--database-url", url, *command)
        assert (code, out) == (2, "") and problem in one_line_error(err)


@pytest.mark.parametrize("case", MALFORMED_BUGGY)
def test_a_database_url_with_a_bad_port_is_a_one_line_config_error(case: str) -> None:
    url = MALFORMED_BUGGY[case]
    for command in (["enqueue", "faulty.noop"], ["status"]):
        code, out, err = cli("--database-url", url, *command)
        assert (code, out) == (2, "") and "database URL" in one_line_error(err)
    with pytest.raises(ConfigError):
        asyncio.run(TaskStore.from_url(url).open())


def _unreachable(backend: str, tmp_path: Path) -> str:
    if backend == "postgres":
        return "postgresql://u@127.0.0.1:1/db"
    (tmp_path / "a-file").write_text("")
    return f"sqlite:///{tmp_path / 'a-file' / 'x.db'}"  # its folder cannot be created


async def test_an_unreachable_database_is_a_one_line_runtime_error(
    backend: str, tmp_path: Path
) -> None:
    url = _unreachable(backend, tmp_path)
    with pytest.raises(DatabaseUnavailable) as refused:
        async with TaskStore.from_url(url):
            pass
    assert "\n" not in str(refused.value)
    code, out, err = await asyncio.to_thread(cli, "--database-url", url, "enqueue", "faulty.noop")
    assert (code, out) == (1, "")
    assert "cannot" in one_line_error(err)


# ------------------------------------------------------------- schema behind
@pytest.fixture
def old_schema_url(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[str]:
    """A database migrated only to taskstore's first revision."""
    admin = request.getfixturevalue("pg_admin_url") if backend == "postgres" else None
    url = create_pg_database(admin, migrate=False) if admin else f"sqlite:///{tmp_path / 'old.db'}"

    async def first_revision() -> None:
        store = TaskStore.from_url(url)
        try:
            await upgrade(store.engine, REVISIONS[0])
        finally:
            await store.close()

    asyncio.run(first_revision())
    yield url
    if admin:
        drop_pg_database(admin, url)


def test_a_schema_older_than_the_code_tells_the_user_to_migrate(old_schema_url: str) -> None:
    with pytest.raises(SchemaOutOfDate, match="taskstore migrate"):
        asyncio.run(TaskStore.from_url(old_schema_url).open())
    code, out, err = cli("--database-url", old_schema_url, "enqueue", "faulty.noop")
    assert (code, out) == (1, "")
    assert "run `taskstore migrate`" in one_line_error(err)
