"""`taskstore doctor` on both backends: each problem it finds is real, comes with a fix,
and the fix makes the finding go away."""

from __future__ import annotations

import dataclasses
import json
import sqlite3

import anyio
import pytest
from sqlalchemy import delete, text, update

from taskstore import TaskStore, doctor
from taskstore.models import TaskEntity
from tests.integration.test_cli import taskstore

_OK = doctor.Finding("ok", "", "")


def _vacuum(path: str) -> None:
    conn = sqlite3.connect(path, timeout=30)
    try:
        conn.execute("VACUUM")
    finally:
        conn.close()


def _by_check(report: doctor.Report) -> dict[str, doctor.Finding]:
    return {f.check: f for f in report.findings}


async def test_a_fresh_database_needs_nothing_but_what_the_server_itself_lacks(
    store: TaskStore, backend: str
) -> None:
    report = await doctor.examine(store)
    findings = _by_check(report)
    assert findings["indexes"].level == "ok" and findings["retention"].level == "ok"
    if backend == "postgres":
        async with store.reading() as conn:
            on = (await conn.execute(text("SHOW autovacuum"))).scalar() == "on"
        assert ("autovacuum" in findings) is not on  # the test server runs without it
        assert findings["table options"].level == "ok"
        assert report.healthy is on
    else:
        assert report.healthy and findings["space"].level == "ok"
    assert {t.name for t in report.health.tables} == set(doctor.TABLES)


async def test_a_missing_index_is_reported_with_the_create_index_that_restores_it(
    store: TaskStore,
) -> None:
    async with store.transaction() as conn:
        await conn.execute(text("DROP INDEX ix_taskstore_tasks_finished"))
    finding = _by_check(await doctor.examine(store))["indexes"]
    assert finding.level == "warn" and "1 index(es) missing" in finding.message
    assert finding.fix is not None and "ix_taskstore_tasks_finished" in finding.fix
    async with store.transaction() as conn:
        await conn.execute(text(finding.fix.rstrip(";")))
    assert _by_check(await doctor.examine(store))["indexes"].level == "ok"


async def test_finished_tasks_no_worker_prunes_are_reported_with_the_purge_that_removes_them(
    store: TaskStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(doctor, "PRUNE_BACKLOG_AT", 20)
    ids = await store.enqueue_many([{"name": "d.old"} for _ in range(30)])
    async with store.transaction() as conn:
        await conn.execute(
            update(TaskEntity)
            .where(TaskEntity.id.in_(ids))
            .values(status="completed", finished_at=text("'2001-01-01 00:00:00'"))
        )
    finding = _by_check(await doctor.examine(store))["retention"]
    assert finding.level == "warn" and finding.message.startswith("30 finished tasks")
    assert finding.fix == "taskstore purge --older-than 604800s --yes"
    # TASKSTORE_RETENTION=0 keeps the history on purpose: nothing is past it
    monkeypatch.setattr(store, "settings", dataclasses.replace(store.settings, retention_seconds=0))
    kept = _by_check(await doctor.examine(store))["retention"]
    assert (kept.level, kept.fix) == ("ok", None) and "are kept" in kept.message
    monkeypatch.undo()
    await store.purge(store.settings.retention_seconds)
    assert _by_check(await doctor.examine(store))["retention"].level == "ok"


async def test_deleted_rows_are_reported_as_dead_rows_or_free_pages_with_their_fix(
    store: TaskStore, backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(doctor, "DEAD_ROWS_AT", 100)
    monkeypatch.setattr(doctor, "SQLITE_FREE_BYTES_AT", 0)
    big = "x" * 2000
    for _ in range(3):
        await store.enqueue_many([{"name": "d.big", "payload": {"b": big}} for _ in range(300)])
    async with store.transaction() as conn:
        await conn.execute(delete(TaskEntity))
    check = "dead rows" if backend == "postgres" else "free pages"
    with anyio.fail_after(30):  # PostgreSQL's statistics arrive within a second or so
        while _by_check(await doctor.examine(store)).get(check, _OK).level != "warn":  # noqa: ASYNC110
            await anyio.sleep(0.3)
    findings = _by_check(await doctor.examine(store))
    if backend == "postgres":
        assert findings[check].fix == "VACUUM (ANALYZE) taskstore_tasks;"
        async with store.engine.connect() as conn:
            conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
            await conn.execute(text(findings[check].fix.rstrip(";")))
    else:
        assert "VACUUM" in (findings[check].fix or "")
        path = store.settings.database_url.database or ""
        await anyio.to_thread.run_sync(_vacuum, path)  # what the fix says: sqlite3 FILE VACUUM
    with anyio.fail_after(30):
        while _by_check(await doctor.examine(store)).get(check, _OK).level != "ok":  # noqa: ASYNC110
            await anyio.sleep(0.3)


async def test_the_doctor_command_prints_each_fix_and_exits_1(
    store: TaskStore, db_url: str
) -> None:
    async with store.transaction() as conn:
        await conn.execute(text("DROP INDEX ix_taskstore_tasks_finished"))
    shown = await anyio.to_thread.run_sync(lambda: taskstore("doctor", url=db_url))
    assert shown.returncode == 1, shown.stderr
    assert "warn  indexes: 1 index(es) missing" in shown.stdout
    assert "      fix: CREATE INDEX ix_taskstore_tasks_finished" in shown.stdout
    assert shown.stdout.rstrip().endswith("problems found (fixes above)")
    as_json = await anyio.to_thread.run_sync(lambda: taskstore("doctor", "--json", url=db_url))
    report = json.loads(as_json.stdout)
    assert as_json.returncode == 1 and report["healthy"] is False
    assert any(f["check"] == "indexes" and f["level"] == "warn" for f in report["findings"])
