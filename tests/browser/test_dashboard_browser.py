"""The dashboard in a real headless Chromium, driven by Playwright.

`taskstore dashboard` runs as a process on a SQLite database with a few tasks; Playwright
drives Debian's Chromium (/usr/bin/chromium: no browser is downloaded). The tests filter
the list, open a failed task and retry it, retry all failed tasks of a queue, and check
that markup in a task's payload, result and error shows as text and never runs, and pause
and resume a queue from the overview, where tasks no worker runs are listed. The pages
they end on are saved as PNGs under ``test-artifacts/`` at the repository root. Without
the browser (or Playwright) the tests are skipped, unless
``TASKSTORE_TEST_REQUIRE_BROWSER=1`` (CI), where they fail.
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
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncConnection

from taskstore import TaskStatus, TaskStore
from taskstore.models import TaskEntity, VideoEntity
from taskstore.repositories import VideoRepository
from tests.browser import hostile

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
        for module, extra in (
            ("starlette", "the web extra (starlette, uvicorn, jinja2)"),
            ("uvicorn", "the web extra (starlette, uvicorn, jinja2)"),
            ("jinja2", "the web extra (starlette, uvicorn, jinja2)"),
            ("playwright", "playwright (the dev extra)"),
        ):
            try:
                __import__(module)
            except ImportError:
                reason = f"{extra} is not installed"
                break
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
                conn, worker_id=WORKER, done=[(task.id, task.fence, result)]
            )
        else:
            await store.tasks.fail(
                conn,
                task_id=task.id,
                worker_id=WORKER,
                fence=task.fence,
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
        message = (
            "cannot probe https://example.org/<broken>.mp4: "
            "ffprobe exited with status 1 (moov atom not found)"
        )
        error = {"type": "ValueError", "message": message, "traceback": TRACEBACK}
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


async def queue_paused(url: str, queue: str) -> bool:
    async with TaskStore.from_url(url) as store:
        return next(q.paused for q in await store.queues() if q.name == queue)


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
async def browser() -> AsyncIterator[Any]:
    """Debian's Chromium under Playwright (never a downloaded browser build)."""
    require_browser()
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        opened = await playwright.chromium.launch(executable_path=CHROMIUM)
        try:
            yield opened
        finally:
            await opened.close()


async def new_page(browser: Any, **options: Any) -> tuple[Any, list[str]]:
    """A page whose JavaScript dialogs are recorded and answered: prompts with the token."""
    context = await browser.new_context(viewport={"width": 1280, "height": 1000}, **options)
    page = await context.new_page()
    dialogs: list[str] = []

    async def answer(dialog: Any) -> None:
        dialogs.append(f"{dialog.type}: {dialog.message}")
        await dialog.accept(TOKEN if dialog.type == "prompt" else None)

    page.on("dialog", answer)
    return page, dialogs


# -------------------------------------------------------------------- tests
async def test_filter_open_failed_task_and_retry_it(
    dashboard: tuple[str, str, int], browser: Any
) -> None:
    base, db_url, failed = dashboard
    page, dialogs = await new_page(browser)

    await page.goto(base)
    assert await page.title() == "Overview · taskstore"
    assert await page.locator(".chart rect").count() >= 5
    await page.click("nav a[href='tasks']")
    await page.wait_for_url(f"{base}tasks")

    await page.select_option("select[name=status]", "failed")
    await page.click("#apply-filters")
    await page.wait_for_url("**/tasks?status=failed*")
    badges = await page.locator("tbody .badge").all_text_contents()
    assert badges == ["failed", "failed"]  # the new failure and the old one
    await assert_rows_fit_on_one_line(page)
    await page.screenshot(path=ARTIFACTS / "dashboard-tasks.png", full_page=True)

    await page.click(f".task-link[data-task-id='{failed}']")
    await page.wait_for_url(f"{base}tasks/{failed}")
    traceback = await page.locator("pre.traceback").text_content()
    assert "ValueError: cannot probe https://example.org/<broken>.mp4" in traceback
    forget = page.locator("button[data-action='forget']")
    assert not await forget.is_visible()  # no token kept yet: nothing to forget

    await page.click("button[data-action='retry']")
    await page.locator(".badge.s-created").wait_for()  # reloaded after the POST
    prompts = [d for d in dialogs if d.startswith("prompt")]
    assert prompts and "token" in prompts[0].lower()
    assert await status_of(db_url, failed) is TaskStatus.CREATED
    stored = await page.evaluate("localStorage.getItem('taskstore.dashboard.token')")
    assert stored == TOKEN
    await page.screenshot(path=ARTIFACTS / "dashboard-task.png", full_page=True)
    await forget.click()  # the created task's box: Cancel, and now the token to forget
    assert not await forget.is_visible()
    assert await page.evaluate("localStorage.getItem('taskstore.dashboard.token')") is None

    await page.goto(base)
    await page.locator(".cards").wait_for()
    await page.screenshot(path=ARTIFACTS / "dashboard.png", full_page=True)
    assert (ARTIFACTS / "dashboard.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


async def test_retry_all_failed_of_one_queue_from_the_task_list(
    dashboard: tuple[str, str, int], browser: Any
) -> None:
    base, db_url, failed = dashboard
    page, dialogs = await new_page(browser)
    await page.goto(f"{base}tasks?status=failed&queue=email")
    [old_failure] = [int(text[1:]) for text in await page.locator(".task-link").all_text_contents()]
    button = page.locator("button[data-action='retry-failed']")
    assert await button.text_content() == "Retry all 1 failed in queue email"

    await button.click()
    await page.locator("text=no tasks match").wait_for()  # reloaded: none failed in email
    assert [d.split(":")[0] for d in dialogs] == ["confirm", "prompt"]
    assert await status_of(db_url, old_failure) is TaskStatus.CREATED
    assert await status_of(db_url, failed) is TaskStatus.FAILED  # another queue: untouched
    assert await page.locator("button[data-action='retry-failed']").count() == 0


async def test_retry_with_dependents_from_a_cancelled_dependencys_page(
    dashboard: tuple[str, str, int], browser: Any
) -> None:
    base, db_url, _ = dashboard
    first, after = await cancelled_workflow(db_url)
    page, dialogs = await new_page(browser)
    await page.goto(f"{base}tasks/{first}")
    await page.click("button[data-action='retry-with-dependents']")
    await page.locator(".badge.s-created").first.wait_for()  # reloaded after the POST
    assert [d.split(":")[0] for d in dialogs] == ["prompt"]
    assert await status_of(db_url, first) is TaskStatus.CREATED
    assert await status_of(db_url, after) is TaskStatus.WAITING
    await page.screenshot(path=ARTIFACTS / "dashboard-workflow.png", full_page=True)


async def cancelled_workflow(url: str) -> tuple[int, int]:
    """A task and one waiting on it, both cancelled by cancelling the first."""
    async with TaskStore.from_url(url) as store:
        first = await store.enqueue("app.probe", queue="media")
        after = await store.enqueue("app.index", queue="media", depends_on=[first])
        await store.cancel(first)
        return first, after


async def test_markup_in_a_task_shows_as_text_and_never_runs(
    dashboard: tuple[str, str, int], browser: Any
) -> None:
    base, db_url, _ = dashboard
    async with TaskStore.from_url(db_url) as store:
        task_id = await hostile.hostile_task(store)
    # Without the Content-Security-Policy, so that only the escaping stands between the
    # markup and the page: a slip would run the script.
    page, dialogs = await new_page(browser, bypass_csp=True)

    await page.goto(f"{base}tasks?queue=hostile")
    await page.wait_for_load_state("networkidle")
    cell = page.locator("td.error-line")
    assert await cell.text_content() == hostile.ERROR_LINE
    assert await cell.is_visible()
    worker = page.locator("tbody td").last  # the worker id holds the attribute breaker
    assert await worker.text_content() == hostile.ATTRIBUTE and await worker.is_visible()
    await assert_nothing_injected(page, dialogs)

    await page.goto(f"{base}tasks/{task_id}")
    await page.wait_for_load_state("networkidle")
    message = page.locator("dt:text-is('message') + dd")
    assert await message.text_content() == hostile.ERROR["message"]
    assert await message.is_visible()
    payload, result = await page.locator("pre.json").all_text_contents()
    assert json.loads(payload) == hostile.PAYLOAD and json.loads(result) == hostile.RESULT
    assert hostile.SCRIPT in await page.locator("pre.traceback").text_content()
    await assert_nothing_injected(page, dialogs)
    await page.screenshot(path=ARTIFACTS / "dashboard-hostile-task.png", full_page=True)

    # The check can fail: the same page runs markup that does get into the document.
    async with page.expect_event("dialog") as opened:
        await page.evaluate(
            "document.body.insertAdjacentHTML('beforeend', '<img src=x onerror=alert(7)>')"
        )
    assert (await opened.value).message == "7"


async def test_pause_then_resume_a_queue_from_the_overview(
    dashboard: tuple[str, str, int], browser: Any
) -> None:
    base, db_url, _ = dashboard
    page, dialogs = await new_page(browser)
    await page.goto(base)
    # No worker is registered: every waiting task is listed as one nobody runs.
    warning = page.locator("#unserved")
    assert "in queue email: no live worker serves the queue" in await warning.text_content()
    row = page.locator("tr[data-queue='email']")
    assert await row.locator(".s-paused").count() == 0

    await row.locator("button[data-action='pause']").click()
    await row.locator(".badge.s-paused").wait_for()  # reloaded after the POST
    assert [d.split(":")[0] for d in dialogs] == ["confirm", "prompt"]
    assert "Pause queue email?" in dialogs[0]
    assert await queue_paused(db_url, "email") is True
    assert await page.locator("tr[data-queue='default'] .s-paused").count() == 0
    await page.screenshot(path=ARTIFACTS / "dashboard-paused.png", full_page=True)

    await row.locator("button[data-action='resume']").click()
    await row.locator("button[data-action='pause']").wait_for()
    assert await row.locator(".s-paused").count() == 0
    assert await queue_paused(db_url, "email") is False
    assert len(dialogs) == 2  # the token was kept; resuming asks nothing


async def assert_nothing_injected(page: Any, dialogs: list[str]) -> None:
    """No dialog opened, and the page holds only its own script and no image at all."""
    assert dialogs == []
    scripts = await page.eval_on_selector_all("script", "s => s.map(e => e.src)")
    assert [src.rsplit("/", 1)[-1] for src in scripts] == ["dashboard.js"]
    assert await page.locator("img").count() == 0


async def assert_rows_fit_on_one_line(page: Any) -> None:
    """The task list is as wide as the page, and no cell wraps (dates, errors, ids)."""
    wrap = await page.eval_on_selector(".table-wrap", "e => [e.scrollWidth, e.clientWidth]")
    assert wrap[0] <= wrap[1], f"the task table is wider than the page: {wrap}"
    heights = await page.eval_on_selector_all(
        "table.tasks tbody tr", "rows => rows.map(r => r.getBoundingClientRect().height)"
    )
    style = "e => parseFloat(getComputedStyle(e).lineHeight)"
    line = await page.eval_on_selector("table.tasks td", style)
    assert heights and max(heights) < 2 * line + 16, (heights, line)
