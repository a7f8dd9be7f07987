"""The dashboard's task list and task page: templates, errors, paging, attempt limits,
"retry all failed" and markup in task data, on SQLite and PostgreSQL.

Like test_dashboard.py, the app runs in the test's event loop through httpx's ASGI
transport on the fixture's opened `TaskStore`.
"""

from __future__ import annotations

import datetime as dt
import html
import inspect
import itertools
import os
import re
import subprocess
import sys
import zipfile
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from markupsafe import escape
from sqlalchemy import update

from taskstore import TaskStatus, TaskStore
from taskstore.formatting import format_age
from taskstore.models import TaskEntity
from tests.browser import hostile

pytest.importorskip("starlette", reason="the dashboard needs the web extra (starlette)")
pytest.importorskip("jinja2", reason="the dashboard needs the web extra (jinja2)")
httpx = pytest.importorskip("httpx", reason="the dashboard tests need httpx")

from taskstore.dashboard import chart, display, templating  # noqa: E402
from tests.integration.dashboard_helpers import (  # noqa: E402
    TOKEN,
    client_for,
    fail,
    finish,
    ids_on,
)

ROOT = Path(__file__).resolve().parents[2]
TEMPLATES = ROOT / "taskstore" / "dashboard" / "templates"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
DASH = "\u2013"  # between the first and last position shown


@pytest.fixture
async def client(store: TaskStore) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(store, TOKEN) as opened:
        yield opened


@pytest.fixture
async def read_only(store: TaskStore) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(store) as opened:
        yield opened


def cell_text(page: str, cls: str) -> list[str]:
    """The text of every ``<td class="cls">`` (escaped markup cannot hold a raw '<')."""
    return [html.unescape(t) for t in re.findall(rf'<td class="{cls}[ "][^>]*>([^<]*)</td>', page)]


async def set_attempts(store: TaskStore, task_id: int, attempts: int, limit: int | None) -> None:
    """As if earlier attempts had crashed their workers (the rescuer counts them)."""
    stmt = update(TaskEntity).where(TaskEntity.id == task_id)
    async with store.transaction() as conn:
        await conn.execute(stmt.values(attempts=attempts, max_attempts=limit))


# ---------------------------------------------------------------- templates
def test_pages_come_from_packaged_templates_that_autoescape() -> None:
    env = templating.templates.env
    assert env.autoescape is True  # every template, the inline SVG included
    assert sorted(env.list_templates()) == sorted(p.name for p in TEMPLATES.iterdir())
    rendered = env.get_template("error.html").render(
        title="<b>t</b>", root="", database="db", writable=False, message="<i>x</i>"
    )
    assert "<i>x</i>" not in rendered and '<p class="error">&lt;i&gt;x&lt;/i&gt;</p>' in rendered
    assert "<title>&lt;b&gt;t&lt;/b&gt; · taskstore</title>" in rendered


def test_the_wheel_ships_the_dashboard_templates(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "hatchling", "build", "-t", "wheel", "-d", str(tmp_path / "dist")],
        cwd=ROOT,
        check=True,
        capture_output=True,
    )
    [wheel] = (tmp_path / "dist").glob("taskstore-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for path in [*TEMPLATES.iterdir(), *(TEMPLATES.parent / "static").iterdir()]:
        assert str(path.relative_to(ROOT)) in names
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    code = (
        "import sys, taskstore.dashboard.templating as t\n"
        "assert t.__file__.startswith(sys.argv[1]), t.__file__\n"
        "for name in t.templates.env.list_templates(): t.templates.get_template(name)\n"
        "print(len(t.templates.env.list_templates()))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(site)}
    done = subprocess.run(
        [sys.executable, "-c", code, str(site)], env=env, cwd=tmp_path, capture_output=True
    )
    assert done.returncode == 0, done.stderr.decode()
    assert int(done.stdout) == len(list(TEMPLATES.iterdir()))


async def test_ages_are_formatted_as_the_cli_formats_them(
    store: TaskStore, client: httpx.AsyncClient
) -> None:
    assert templating.templates.env.filters["age"] is format_age
    two_hours_ago = dt.datetime.now(dt.UTC) - dt.timedelta(hours=2)
    await store.enqueue("pkg.late", {}, queue="late", run_at=two_hours_ago)
    page = (await client.get("/")).text
    assert f"<td>{format_age(2 * 3600 + 30)}</td>" == "<td>2.0h</td>" and "<td>2.0h</td>" in page


def test_chart_axis_labels_never_print_over_each_other() -> None:
    minute_width = (chart.WIDTH - chart.LEFT - chart.RIGHT) / 60
    for minute in range(60):  # the chart's last minute anywhere in the hour
        now = dt.datetime(2030, 1, 1, 10, minute, tzinfo=dt.UTC)
        ticks = chart.throughput_chart([], now).ticks
        assert ticks[-1].text == f"10:{minute:02d}"
        gaps = [(b.x - a.x) / minute_width for a, b in itertools.pairwise(ticks)]
        assert all(gap > chart.TICK_GAP - 0.1 for gap in gaps), (minute, gaps)


# ---------------------------------------------------------------- task list
async def test_task_list_shows_the_first_line_of_each_error_truncated(
    store: TaskStore, client: httpx.AsyncClient
) -> None:
    long = "x" * 200
    short = await fail(store, payload={"n": 1})
    error = {"type": "KeyError", "message": f"{long}\nsecond line", "traceback": "..."}
    clipped = await finish(store, "pkg.other", error=error)
    waiting = await store.enqueue("pkg.fine", {})

    page = (await client.get("/tasks")).text
    assert ids_on(page) == [waiting, clipped, short]
    assert "<th>error</th>" in page
    lines = cell_text(page, "error-line")
    assert lines[0] == ""  # no error yet
    assert lines[1] == f"KeyError: {long}"[: display.ERROR_LINE_WIDTH - 1] + "\u2026"
    assert len(lines[1]) == display.ERROR_LINE_WIDTH
    assert f'title="KeyError: {long}\nsecond line">' in page  # all of it on hover
    assert lines[2] == "ValueError: bad <url>"


async def test_task_list_counts_matches_and_links_previous_and_next_pages(
    store: TaskStore, client: httpx.AsyncClient
) -> None:
    ids = [await store.enqueue("pkg.a", {}, queue="q1") for _ in range(7)]
    await store.enqueue("pkg.a", {}, queue="q2")  # not counted: another queue
    newest_first = sorted(ids, reverse=True)

    def count_and_links(page: str) -> tuple[str, str | None, str | None]:
        found = re.search(r'<span class="count" id="task-count">([^<]*)</span>', page)
        assert found, page
        links = dict(re.findall(r'id="(prev-page|next-page)" href="([^"]+)"', page))
        prev, nxt = links.get("prev-page"), links.get("next-page")
        return found.group(1), prev and html.unescape(prev), nxt and html.unescape(nxt)

    seen: list[list[int]] = []
    shown: list[str] = []
    url: str | None = "tasks?queue=q1&limit=3"
    while url is not None:
        page = (await client.get("/" + url)).text
        seen.append(ids_on(page))
        count, prev, url = count_and_links(page)
        shown.append(count)
        assert (prev is None) == (len(seen) == 1)
    assert seen == [newest_first[:3], newest_first[3:6], newest_first[6:]]
    assert shown == [f"tasks {a}{DASH}{b} of 7" for a, b in ((1, 3), (4, 6), (7, 7))]

    back: list[list[int]] = []
    url = prev
    while url is not None:
        page = (await client.get("/" + url)).text
        back.append(ids_on(page))
        count, url, nxt = count_and_links(page)
        assert nxt is not None
    assert back == [newest_first[3:6], newest_first[:3]] and count == f"tasks 1{DASH}3 of 7"

    doc = (await client.get("/api/tasks", params={"queue": "q1", "limit": 3})).json()
    assert (doc["total"], doc["prev_after_id"], doc["next_before_id"]) == (7, None, ids[4])
    after = {"queue": "q1", "limit": 3, "after_id": ids[0]}
    doc = (await client.get("/api/tasks", params=after)).json()
    assert [t["id"] for t in doc["tasks"]] == newest_first[3:6] and doc["prev_after_id"]
    assert "0 matching tasks" in (await client.get("/tasks?status=failed")).text
    both = await client.get(f"/tasks?before_id={ids[3]}&after_id={ids[1]}")
    assert both.status_code == 400 and "give before_id or after_id, not both" in both.text


async def test_attempts_show_the_limit_the_worker_applies(
    store: TaskStore, client: httpx.AsyncClient
) -> None:
    unset = await store.enqueue("pkg.a", {})
    crashed = await store.enqueue("pkg.a", {})
    await set_attempts(store, crashed, 4, None)
    over = await store.enqueue("pkg.a", {}, max_attempts=3)
    await set_attempts(store, over, 4, 3)
    default = display.DEFAULT_MAX_ATTEMPTS

    page = (await client.get("/tasks")).text
    assert cell_text(page, "attempts") == ["4 of 3", f"4 of {default}", f"0 of {default}"]
    assert " of -" not in page
    assert page.count(f'title="{escape(display.DEFAULT_LIMIT_HINT)}"') == 2  # hover: why
    detail = (await client.get(f"/tasks/{unset}")).text
    assert f"<dt>attempts</dt><dd>0 of {default} <span" in detail and "(default)" in detail
    detail = (await client.get(f"/tasks/{over}")).text
    assert "<dt>attempts</dt><dd>4 of 3</dd>" in detail


async def test_a_failed_task_shows_the_limit_its_handler_set_not_the_default(
    store: TaskStore, client: httpx.AsyncClient
) -> None:
    from worker import Registry, Worker, WorkerConfig, task

    registry = Registry()

    @task(name="pkg.once", registry=registry, max_attempts=1)
    async def once(ctx: object) -> None:
        raise RuntimeError("no second try")

    task_id = await store.enqueue("pkg.once", {})
    config = WorkerConfig(queues={"default": None}, burst=True)
    await Worker(store, registry, config).run()
    info = await store.require(task_id)
    assert (info.status, info.max_attempts) == (TaskStatus.FAILED, None)
    detail = (await client.get(f"/tasks/{task_id}")).text
    assert "<dt>attempts</dt><dd>1 of 1 <span" in detail and "(its handler's)" in detail
    assert cell_text((await client.get("/tasks")).text, "attempts") == ["1 of 1"]


async def test_a_failed_task_whose_handler_sets_no_limit_shows_the_default_as_known(
    store: TaskStore, client: httpx.AsyncClient
) -> None:
    from taskstore.formatting import attempt_limit
    from worker import NonRetryable, Registry, Worker, WorkerConfig, task

    registry = Registry()

    @task(name="pkg.plain", registry=registry)
    async def plain(ctx: object) -> None:
        raise NonRetryable("no")

    task_id = await store.enqueue("pkg.plain", {})
    await Worker(store, registry, WorkerConfig(queues={"default": None}, burst=True)).run()
    info = await store.require(task_id)
    assert (info.status, info.max_attempts) == (TaskStatus.FAILED, None)
    detail = (await client.get(f"/tasks/{task_id}")).text
    assert "<dt>attempts</dt><dd>1 of 3 <span" in detail and "sets none" in detail
    assert "(its handler's)" not in detail
    assert attempt_limit(info.max_attempts, info.error) == (
        "3 (the @task default: its handler sets none)"  # as `taskstore show` prints it
    )


async def test_a_fan_in_of_many_shows_its_first_dependencies_and_folds_the_rest(
    store: TaskStore, read_only: httpx.AsyncClient
) -> None:
    leaves = [{"name": "a.b", "key": f"n{n}"} for n in range(300)]
    fan_in = {"name": "a.sum", "key": "sum", "depends_on": [f"n{n}" for n in range(300)]}
    ids = await store.enqueue_many([*leaves, fan_in])
    page = (await read_only.get(f"/tasks/{ids[-1]}")).text
    waits = page.split("<dt>waits for</dt><dd>", 1)[1].split("</dd>", 1)[0]
    shown, folded = waits.split("<details", 1)
    assert shown.count("<a href=") == 20 and f"#{ids[0]}<" in shown
    assert "and 280 more (300 in all)" in folded and folded.count("<a href=") == 280
    heading = "<h2>Workflow (more than 200 tasks; the 201 linked nearest to this one)</h2>"
    assert heading in page
    small = [{"name": "a.b", "key": f"m{n}"} for n in range(199)]
    join = {"name": "a.sum", "key": "join", "depends_on": [f"m{n}" for n in range(199)]}
    exact = await store.enqueue_many([*small, join])
    assert "<h2>Workflow (200 tasks)</h2>" in (await read_only.get(f"/tasks/{exact[-1]}")).text
    leaf = (await read_only.get(f"/tasks/{ids[0]}")).text
    assert f'<dt>waited on by</dt><dd><a href="tasks/{ids[-1]}">#{ids[-1]}</a></dd>' in leaf


def test_the_default_attempt_limit_is_the_task_decorators() -> None:
    from worker.registry import Registry, TaskDef, task

    registry = Registry()

    @task(name="pkg.undeclared", registry=registry)
    async def undeclared(ctx: object) -> None: ...

    undeclared_def = registry.tasks["pkg.undeclared"]
    assert undeclared_def.max_attempts == display.DEFAULT_MAX_ATTEMPTS
    assert undeclared_def.default_max_attempts
    assert inspect.signature(task).parameters["max_attempts"].default is None
    assert TaskDef.max_attempts == display.DEFAULT_MAX_ATTEMPTS


# ---------------------------------------------------------- retry all failed
async def test_retry_all_failed_needs_the_token_and_takes_one_queue_or_all(
    store: TaskStore, client: httpx.AsyncClient, read_only: httpx.AsyncClient
) -> None:
    in_a = [await fail(store, queue="a") for _ in range(2)]
    in_b = await fail(store, queue="b")
    pending = await store.enqueue("pkg.a", {}, queue="a")

    async def statuses() -> list[TaskStatus]:
        return [(await store.require(i)).status for i in (*in_a, in_b, pending)]

    failed, created = TaskStatus.FAILED, TaskStatus.CREATED
    denied = await read_only.post("/api/retry-failed?queue=a", headers=AUTH)
    assert denied.status_code == 403 and "read-only" in denied.json()["error"]
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {TOKEN}"}):
        answer = await client.post("/api/retry-failed", headers=headers)
        assert answer.status_code == 401 and answer.headers["www-authenticate"] == "Bearer"
    assert (await client.get("/api/retry-failed")).status_code == 405
    bad = await client.post("/api/retry-failed?queue=Bad!Queue", headers=AUTH)
    assert bad.status_code == 400 and "invalid queue name" in bad.json()["error"]
    assert await statuses() == [failed, failed, failed, created]

    one = await client.post("/api/retry-failed?queue=a", headers=AUTH)
    assert one.json() == {"retried": 2, "queue": "a", "name": None}
    assert await statuses() == [created, created, failed, created]
    every = await client.post("/api/retry-failed", headers=AUTH)
    assert every.json()["retried"] == 1
    assert await statuses() == [created, created, created, created]


async def test_a_task_with_dependents_offers_retry_with_them_and_it_revives_them(
    store: TaskStore, client: httpx.AsyncClient
) -> None:
    first = await store.enqueue("x.first", concurrency_key="tenant-7")
    after = await store.enqueue("x.after", depends_on=[first])
    assert await store.cancel(first) == TaskStatus.CANCELLED
    assert (await store.require(after)).status == TaskStatus.CANCELLED
    page = (await client.get(f"/tasks/{first}")).text
    assert f'data-url="api/tasks/{first}/retry?with_dependents=1"' in page
    assert "<dt>concurrency key</dt><dd>tenant-7</dd>" in page
    assert "retry?with_dependents" not in (await client.get(f"/tasks/{after}")).text
    plain = await client.post(f"/api/tasks/{first}/retry", headers=AUTH)
    assert plain.json() == {"id": first, "status": "created"}
    assert (await store.require(after)).status == TaskStatus.CANCELLED
    await store.cancel(first)
    for word in ("no", "OFF", "False"):  # a no is a no, whatever its spelling
        said = await client.post(f"/api/tasks/{first}/retry?with_dependents={word}", headers=AUTH)
        assert said.status_code == 200
        assert (await store.require(after)).status == TaskStatus.CANCELLED
        await store.cancel(first)
    bad = await client.post(f"/api/tasks/{first}/retry?with_dependents=abc", headers=AUTH)
    assert bad.status_code == 400 and "with_dependents must be" in bad.json()["error"]
    assert (await store.require(first)).status == TaskStatus.CANCELLED
    revived = await client.post(f"/api/tasks/{first}/retry?with_dependents=1", headers=AUTH)
    assert revived.json() == {"id": first, "status": "created"}
    assert (await store.require(after)).status == TaskStatus.WAITING


async def test_a_task_cancelled_by_its_dependency_points_there_instead_of_offering_retry(
    store: TaskStore, client: httpx.AsyncClient
) -> None:
    first = await store.enqueue("x.first")
    after = await store.enqueue("x.after", depends_on=[first])
    await store.cancel(first)
    page = (await client.get(f"/tasks/{after}")).text
    assert 'data-action="retry"' not in page and 'data-action="cancel"' not in page
    pointer = f'did not complete: <a href="tasks/{first}">#{first}</a>'
    assert "retry with its dependents what it waits for" in page and pointer in page
    await store.retry(first, with_dependents=True)
    await store.cancel(after)  # cancelled on its own now: retrying it alone works
    assert 'data-action="retry"' in (await client.get(f"/tasks/{after}")).text


async def test_list_of_failed_tasks_offers_retry_all_failed_only_with_a_token(
    store: TaskStore, client: httpx.AsyncClient, read_only: httpx.AsyncClient
) -> None:
    await fail(store, queue="a")
    await fail(store, queue="b")
    button = re.compile(r'<button type="button" data-action="retry-failed" data-url="([^"]+)"')

    page = (await client.get("/tasks?status=failed&queue=a")).text
    [url] = button.findall(page)
    assert html.unescape(url) == "api/retry-failed?queue=a"
    assert "Retry all 1 failed in queue a</button>" in page
    every = (await client.get("/tasks?status=failed")).text
    assert "Retry all 2 failed in all queues</button>" in every
    assert html.unescape(button.findall(every)[0]) == "api/retry-failed?"
    for elsewhere in ("/tasks", "/tasks?status=completed", "/tasks?status=failed&queue=none"):
        assert not button.search((await client.get(elsewhere)).text), elsewhere
    assert "retry-failed" not in (await read_only.get("/tasks?status=failed")).text


# ------------------------------------------------------------ markup in data
async def test_markup_in_payload_result_and_error_renders_as_text(
    store: TaskStore, client: httpx.AsyncClient
) -> None:
    task_id = await hostile.hostile_task(store)
    listing = (await client.get("/tasks?queue=hostile")).text
    detail = (await client.get(f"/tasks/{task_id}")).text
    for page in (listing, detail):
        assert hostile.SCRIPT not in page and hostile.ATTRIBUTE not in page
        assert "<img" not in page and page.count("<script") == 1  # the dashboard's own
        assert escape(hostile.ATTRIBUTE) in page  # the worker id
    assert cell_text(listing, "error-line") == [hostile.ERROR_LINE]
    [title] = re.findall(r'<td class="error-line" title="([^"]*)"', listing)
    assert html.unescape(title) == hostile.ERROR_LINE + "\nsecond line " + hostile.SCRIPT

    assert f"<dt>message</dt><dd>{escape(hostile.ERROR['message'])}</dd>" in detail
    assert f"<dt>dedup key</dt><dd>{escape(hostile.ATTRIBUTE)}</dd>" in detail
    blocks = re.findall(r'<pre class="(json|traceback)">([^<]*)</pre>', detail)
    texts = {kind: html.unescape(text) for kind, text in blocks[1:]}
    assert display.pretty_json(hostile.PAYLOAD) == html.unescape(blocks[0][1])
    assert display.pretty_json(hostile.RESULT) == texts["json"]
    assert texts["traceback"] == hostile.ERROR["traceback"]


async def test_the_task_page_says_what_holds_up_a_task_that_waits_to_start(
    store: TaskStore, client: httpx.AsyncClient
) -> None:
    first = await store.enqueue("demo.first", queue="demo", delay=3600)
    last = await store.enqueue("demo.last", queue="demo", depends_on=[first])
    page = html.unescape((await client.get(f"/tasks/{last}")).text)
    assert f"it waits for task {first}; task {first} is scheduled for " in page
    doc = (await client.get(f"/api/tasks/{last}")).json()
    assert doc["held_up"].startswith(f"it waits for task {first}; task {first} is scheduled")
    completed = await finish(store, "demo.done", result={})
    assert "held up" not in (await client.get(f"/tasks/{completed}")).text
