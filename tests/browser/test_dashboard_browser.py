"""The dashboard in a real headless Chromium: filter, open a failed task, retry it.

`taskstore dashboard` runs as a process on a SQLite database with a few tasks; Chromium
is driven over the DevTools protocol (see `cdp`). The pages it ends on are saved as PNGs under
``test-artifacts/`` at the repository root. Without /usr/bin/chromium the test is
skipped, unless ``TASKSTORE_TEST_REQUIRE_BROWSER=1`` (CI), where it fails.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncConnection

from taskstore import TaskStatus, TaskStore
from taskstore.models import TaskEntity, VideoEntity
from taskstore.repositories import VideoRepository
from tests.browser.cdp import Browser

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
TOKEN = "browser-test-token"
WORKER = "worker-1"
TRACEBACK = (
    "Traceback (most recent call last):\n"
    '  File "media_pipeline.py", line 41, in probe_video\n'
    "    raise ValueError(f'cannot probe {url}')\n"
    "ValueError: cannot probe https://example.org/<broken>.mp4\n"
)


def require_browser() -> None:
    reason = None
    if not os.access(CHROMIUM, os.X_OK):
        reason = f"{CHROMIUM} is missing (apt-get install chromium)"
    else:
        try:
            import starlette  # noqa: F401
            import uvicorn  # noqa: F401
        except ImportError:
            reason = "the web extra (starlette, uvicorn) is not installed"
    if reason is None:
        return
    if os.environ.get("TASKSTORE_TEST_REQUIRE_BROWSER") == "1":
        pytest.fail(f"browser test required (TASKSTORE_TEST_REQUIRE_BROWSER=1) but {reason}")
    pytest.skip(f"browser test skipped: {reason}")


# ------------------------------------------------------------------ database
async def run_one(store: TaskStore, queue: str, *, error: dict | None = None) -> int:
    """Claim the next task of `queue` and complete it, or fail it with `error`."""
    async with store.transaction() as conn:
        [task] = await store.tasks.claim(
            conn, worker_id=WORKER, queue=queue, limit=1, lease_seconds=30
        )
    async with store.transaction() as conn:
        if error is None:
            result = json.dumps({"frames": 100 + task.id})
            await store.tasks.complete_many(
                conn, worker_id=WORKER, done=[(task.id, task.attempt, result)]
            )
        else:
            await store.tasks.fail(
                conn,
                task_id=task.id,
                worker_id=WORKER,
                attempt=task.attempt,
                error=error,
                retry_in=None,
            )
    return task.id


async def finished_ago(conn: AsyncConnection, task_id: int, *, minutes: int) -> None:
    when = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=minutes)
    await conn.execute(update(TaskEntity).where(TaskEntity.id == task_id).values(finished_at=when))


async def seed(url: str) -> int:
    """Completed tasks over the last half hour, a few waiting ones, an old failure and a
    new one; returns the new failure's id."""
    async with TaskStore.from_url(url) as store:
        for n in range(40):
            await store.enqueue("app.media.probe_video", {"url": f"https://example.org/{n}.mp4"})
            task_id = await run_one(store, "default")
            async with store.sessions() as session:
                title = f"Clip {n}"
                await VideoRepository(session).create(
                    VideoEntity(title=title, task_id=task_id, width=1280, height=720)
                )
                await session.commit()
            async with store.transaction() as conn:  # spread them for the chart
                await finished_ago(conn, task_id, minutes=(n * 7) % 30)
        for n in range(3):
            await store.enqueue("app.mail.send", {"to": f"user{n}@example.org"}, queue="email")
        await store.enqueue("app.mail.send", {"to": "nobody@example.org"}, queue="email")
        timeout = {"type": "TimeoutError", "message": "SMTP server did not answer"}
        old_failure = await run_one(store, "email", error=timeout)
        async with store.transaction() as conn:
            await finished_ago(conn, old_failure, minutes=12)
        payload = {"url": "https://example.org/<broken>.mp4"}
        await store.enqueue("app.media.probe_video", payload, max_attempts=1)
        error = {"type": "ValueError", "message": "cannot probe", "traceback": TRACEBACK}
        return await run_one(store, "default", error=error)


async def migrate(url: str) -> None:
    store = TaskStore.from_url(url)
    try:
        await store.migrate()
    finally:
        await store.close()  # its SQLite connection must not outlive this event loop


async def status_of(url: str, task_id: int) -> TaskStatus:
    async with TaskStore.from_url(url) as store:
        return (await store.require(task_id)).status


# ---------------------------------------------------------------- processes
def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until_up(url: str, proc: subprocess.Popen[bytes], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, "the dashboard exited early"
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except (urllib.error.URLError, ConnectionError):
            time.sleep(0.1)
    raise AssertionError(f"the dashboard did not answer at {url}")


@pytest.fixture
def dashboard(tmp_path: Path) -> Iterator[tuple[str, str, int]]:
    """(base URL, database URL, failed task id) of a running `taskstore dashboard`."""
    require_browser()
    db_url = f"sqlite:///{tmp_path / 'dashboard.db'}"
    asyncio.run(migrate(db_url))
    failed = asyncio.run(seed(db_url))
    port = free_port()
    command = [sys.executable, "-m", "taskstore.dashboard", "--port", str(port)]
    with (tmp_path / "dashboard.log").open("wb") as log:
        proc = subprocess.Popen(
            [*command, "--database-url", db_url, "--token", TOKEN], stdout=log, stderr=log
        )
    base = f"http://127.0.0.1:{port}/"
    try:
        wait_until_up(base, proc)
        yield base, db_url, failed
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0, (tmp_path / "dashboard.log").read_text()


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Browser]:
    require_browser()
    profile = tmp_path / "chromium-profile"
    profile.mkdir()
    opened = Browser(CHROMIUM, profile, tmp_path / "chromium.log")
    try:
        yield opened
    finally:
        opened.close()


# --------------------------------------------------------------------- test
def test_filter_open_failed_task_and_retry_it(
    dashboard: tuple[str, str, int], browser: Browser
) -> None:
    base, db_url, failed = dashboard
    page = browser.new_page()
    prompts = page.answer_prompts(TOKEN)

    page.navigate(base)
    assert page.evaluate("document.title") == "Overview · taskstore"
    assert page.evaluate("document.querySelectorAll('.chart rect').length") >= 5
    page.click("nav a[href='tasks']")
    page.wait_for("location.pathname === '/tasks' && document.readyState === 'complete'")

    page.evaluate("document.querySelector('select[name=status]').value = 'failed'")
    page.click("#apply-filters")
    page.wait_for("location.search.includes('status=failed') && !!document.querySelector('tbody')")
    badges = page.evaluate("[...document.querySelectorAll('tbody .badge')].map(b => b.textContent)")
    assert badges == ["failed", "failed"]  # the new failure and the old one
    page.screenshot(ARTIFACTS / "dashboard-tasks.png")

    page.click(f".task-link[data-task-id='{failed}']")
    page.wait_for(f"location.pathname === '/tasks/{failed}' && !!document.querySelector('pre')")
    traceback = page.evaluate("document.querySelector('pre.traceback').textContent")
    assert "ValueError: cannot probe https://example.org/<broken>.mp4" in traceback

    page.click("button[data-action='retry']")
    page.wait_for("!!document.querySelector('.badge.s-created')")  # reloaded after the POST
    assert prompts and "token" in prompts[0].lower()
    assert asyncio.run(status_of(db_url, failed)) is TaskStatus.CREATED
    assert page.evaluate("localStorage.getItem('taskstore.dashboard.token')") == TOKEN
    page.screenshot(ARTIFACTS / "dashboard-task.png")

    page.navigate(base)
    page.wait_for("!!document.querySelector('.cards')")
    page.screenshot(ARTIFACTS / "dashboard.png")
    assert (ARTIFACTS / "dashboard.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
