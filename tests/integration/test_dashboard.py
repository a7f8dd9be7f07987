"""The web dashboard against a real store, on SQLite and PostgreSQL.

The app runs in the test's event loop through httpx's ASGI transport, on the fixture's
opened `TaskStore`; the `taskstore dashboard` command is also run as a real process.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator

import pytest
from click.testing import CliRunner
from markupsafe import escape
from sqlalchemy import insert

from taskstore import TaskStatus, TaskStore
from taskstore.dashboard import cli_command
from taskstore.models import CaptionEntity, MediaEntity, TranscriptEntity, VideoEntity
from taskstore.repositories import CaptionRepository, TranscriptRepository, VideoRepository

pytest.importorskip("starlette", reason="the dashboard needs the web extra (starlette)")
httpx = pytest.importorskip("httpx", reason="the dashboard tests need httpx")

from tests.integration.dashboard_helpers import (  # noqa: E402
    TOKEN,
    TRACEBACK,
    WORKER,
    client_for,
    fail,
    finish,
    ids_on,
    register_worker,
)


@pytest.fixture
async def client(store: TaskStore) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(store, TOKEN) as opened:
        yield opened


@pytest.fixture
async def read_only(store: TaskStore) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(store) as opened:
        yield opened


# -------------------------------------------------------------------- pages
async def test_index_renders_counts_throughput_and_workers(
    store: TaskStore, client: httpx.AsyncClient
) -> None:
    await store.enqueue("pkg.mail.send", {}, queue="email")
    await store.enqueue("pkg.mail.send", {}, queue="email")
    await finish(store, "pkg.media.probe", queue="media", result={"ok": True})
    await fail(store, queue="media")
    await register_worker(store, "w-1", host="host-a")
    page = await client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    text = page.text
    for status, count in (("created", 2), ("completed", 1), ("failed", 1), ("running", 0)):
        assert f'<span class="count">{count}</span><span class="label">{status}</span>' in text
    assert 'href="tasks?status=created&amp;queue=email">2</a>' in text
    assert '<svg class="chart"' in text and 'class="bar-ok"' in text and 'class="bar-fail"' in text
    assert "last 60 minutes: 1 completed, 1 failed" in text
    assert '<a href="workers">1 alive</a>' in text
    assert store.settings.safe_url in text
    assert "default-src 'self'" in page.headers["content-security-policy"]
    partial = await client.get("/partials/overview")
    assert partial.status_code == 200 and "<html" not in partial.text
    assert 'class="cards"' in partial.text
    workers = await client.get("/workers")
    assert (
        "host-a" in workers.text and "email, media:4" in workers.text and "s-alive" in workers.text
    )


async def test_tasks_waiting_for_their_dependencies_are_counted_and_filtered(
    store: TaskStore, client: httpx.AsyncClient
) -> None:
    first = await store.enqueue("pkg.a", {}, queue="wf", delay=3600)
    then = await store.enqueue("pkg.b", {}, queue="wf", depends_on=[first])
    text = (await client.get("/")).text
    assert '<span class="count">1</span><span class="label">waiting</span>' in text
    assert 'href="tasks?status=waiting&amp;queue=wf">1</a>' in text
    listed = (await client.get("/tasks")).text
    assert '<option value="waiting">' in listed
    assert ids_on((await client.get("/tasks?status=waiting")).text) == [then]


async def test_task_list_filters_and_pages(store: TaskStore, client: httpx.AsyncClient) -> None:
    first = [await store.enqueue("pkg.a", {"n": n}, queue="q1") for n in range(7)]
    others = [await store.enqueue("pkg.b", {}, queue="q2") for _ in range(3)]
    await store.cancel(first[1])
    await store.cancel(others[0])

    seen: list[int] = []
    url: str | None = "/tasks?queue=q1&limit=3"
    while url is not None:
        page = (await client.get(url)).text
        seen += ids_on(page)
        found = re.search(r'id="next-page" href="([^"]+)"', page)
        url = "/" + found.group(1).replace("&amp;", "&") if found else None
    assert seen == sorted(first, reverse=True)

    cancelled = ids_on((await client.get("/tasks?status=cancelled")).text)
    assert cancelled == sorted([first[1], others[0]], reverse=True)
    by_name = ids_on((await client.get("/tasks?name=pkg.b&queue=q2&status=created")).text)
    assert by_name == sorted(others[1:], reverse=True)
    form = (await client.get("/tasks?status=cancelled&queue=q2")).text
    assert '<option value="cancelled" selected>' in form and 'value="q2"' in form
    assert "no tasks match" in (await client.get("/tasks?status=failed")).text


async def test_api_pages_with_before_id(store: TaskStore, client: httpx.AsyncClient) -> None:
    ids = [await store.enqueue("pkg.a", {}, queue="q1") for _ in range(5)]
    seen: list[int] = []
    before: int | None = None
    while True:
        query = {"queue": "q1", "limit": 2, **({"before_id": before} if before else {})}
        doc = (await client.get("/api/tasks", params=query)).json()
        seen += [t["id"] for t in doc["tasks"]]
        before = doc["next_before_id"]
        if before is None:
            break
    assert seen == sorted(ids, reverse=True)


async def test_bad_input_is_400_and_a_missing_task_404(client: httpx.AsyncClient) -> None:
    cases = [
        ("/tasks?status=bogus", 400, "unknown status 'bogus'"),
        ("/tasks?queue=Bad!Queue", 400, "invalid queue name"),
        ("/tasks?name=not%20a%20name", 400, "invalid task name"),
        ("/tasks?before_id=x", 400, "before_id must be an integer"),
        ("/tasks/abc", 400, "task id must be an integer"),
        ("/tasks/0", 400, "task id must be an integer from 1"),
        ("/tasks/987654", 404, "no task with id 987654"),
    ]
    for path, code, message in cases:
        page = await client.get(path)
        assert (page.status_code, page.headers["content-type"][:9]) == (code, "text/html")
        assert f'<p class="error">{escape(message)}' in page.text, path
        api = await client.get("/api" + path)
        assert api.status_code == code
        error = api.json()["error"]
        assert message in error and "\n" not in error
    assert (await client.get("/api/tasks?limit=0")).status_code == 400
    assert (await client.get("/api/throughput?minutes=abc")).status_code == 400


async def test_task_detail_shows_error_and_results_escaped(
    store: TaskStore, client: httpx.AsyncClient
) -> None:
    task_id = await fail(store, payload={"url": "https://example.org/a.mp4"})
    async with store.sessions() as session:
        video = await VideoRepository(session).create(
            VideoEntity(
                title="Clip <one>", url="https://example.org/a.mp4", width=640, task_id=task_id
            )
        )
        await TranscriptRepository(session).create(
            TranscriptEntity(media_id=video.id, task_id=task_id, text="hello world", language="en")
        )
        await CaptionRepository(session).create(
            CaptionEntity(media_id=video.id, task_id=task_id, text="a caption", timestamp=1.5)
        )
        await session.commit()

    page = (await client.get(f"/tasks/{task_id}")).text
    escaped = "ValueError: bad &lt;url&gt; &amp; &#34;quotes&#34;"  # Jinja2's autoescape
    assert '<pre class="traceback">' in page and escaped in page
    assert "bad <url>" not in page and "Clip <one>" not in page
    assert "<dt>message</dt><dd>bad &lt;url&gt;</dd>" in page
    assert "<dt>attempts</dt><dd>1 of 1</dd>" in page and f"<dd>{WORKER}</dd>" in page
    assert "<dt>run at</dt><dd><time" in page
    assert "Clip &lt;one&gt;" in page and "hello world" in page and "a caption" in page
    assert 'data-action="retry"' in page and 'data-action="cancel"' not in page

    doc = (await client.get(f"/api/tasks/{task_id}")).json()
    assert doc["status"] == "failed" and doc["error"]["traceback"] == TRACEBACK
    assert doc["payload"] == {"url": "https://example.org/a.mp4"}
    [media] = doc["media"]
    assert (media["media_type"], media["width"], media["title"]) == ("video", 640, "Clip <one>")
    assert [t["text"] for t in doc["transcripts"]] == ["hello world"]
    assert [(c["text"], c["timestamp"]) for c in doc["captions"]] == [("a caption", 1.5)]


async def test_a_result_of_a_subclass_the_dashboard_never_imported_shows_its_common_columns(
    store: TaskStore, client: httpx.AsyncClient
) -> None:
    """An application's own `VideoEntity` subclass: the dashboard process does not import
    its model, so its rows show by the columns every media row has."""
    task_id = await fail(store)
    media = MediaEntity.__table__
    async with store.sessions() as session:
        await VideoRepository(session).create(VideoEntity(id="v1", task_id=task_id))
        await session.commit()
    async with store.transaction() as conn:
        row = {"media_type": "extended_video", "title": "Own <kind>", "task_id": task_id}
        await conn.execute(insert(media).values(id="x1", **row))
    page = await client.get(f"/tasks/{task_id}")
    assert page.status_code == 200 and "Own &lt;kind&gt;" in page.text
    doc = (await client.get(f"/api/tasks/{task_id}")).json()
    assert [(m["id"], m["media_type"]) for m in doc["media"]] == [
        ("v1", "video"),
        ("x1", "extended_video"),
    ]


async def test_json_endpoints_parse(store: TaskStore, client: httpx.AsyncClient) -> None:
    done = await finish(store, "pkg.a", result={"words": 42})
    await fail(store)
    overview = (await client.get("/api/overview")).json()
    assert overview["totals"] == {"completed": 1, "failed": 1}
    assert overview["finished_recently"]["5m"] == {"completed": 1, "failed": 1}
    assert overview["database"] == store.settings.safe_url
    points = (await client.get("/api/throughput?minutes=5")).json()["points"]
    assert sum(p["completed"] for p in points) == 1 and sum(p["failed"] for p in points) == 1
    assert all(p["minute"].endswith("+00:00") for p in points)
    tasks = (await client.get("/api/tasks")).json()
    assert [t["status"] for t in tasks["tasks"]] == ["failed", "completed"]
    assert tasks["next_before_id"] is None
    assert (await client.get(f"/api/tasks/{done}")).json()["result"] == {"words": 42}
    await register_worker(store, "w-json", host="host-b")
    [worker] = (await client.get("/api/workers")).json()["workers"]
    assert (worker["id"], worker["host"], worker["alive"]) == ("w-json", "host-b", True)
    assert worker["queues"] == {"media": 4, "email": None}


async def test_payload_script_is_escaped_everywhere(
    store: TaskStore, client: httpx.AsyncClient
) -> None:
    payload = {"html": "<script>alert(1)</script>", "<img src=x onerror=alert(2)>": "'\""}
    task_id = await store.enqueue("pkg.a", payload, queue="q1")
    page = (await client.get(f"/tasks/{task_id}")).text
    assert "<script>alert(1)</script>" not in page and "<img src=x" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "&lt;img src=x onerror=alert(2)&gt;" in page
    assert page.count("<script") == 1  # the dashboard's own script, from /static only
    assert (await client.get(f"/api/tasks/{task_id}")).json()["payload"] == payload


# ------------------------------------------------------------ retry / cancel
async def test_a_token_set_with_a_trailing_newline_is_the_token_and_a_blank_one_is_none(
    store: TaskStore,
) -> None:
    """Env files and secrets often end in a newline; the header's token is stripped."""
    failed = await fail(store)
    retry = f"/api/tasks/{failed}/retry"
    async with client_for(store, f"{TOKEN}\n") as client:
        answer = await client.post(retry, headers={"Authorization": f"Bearer {TOKEN}"})
        assert answer.status_code == 200, answer.text
    async with client_for(store, "  ") as client:
        answer = await client.post(retry, headers={"Authorization": "Bearer x"})
        assert answer.status_code == 403 and "read-only" in answer.json()["error"]


async def test_retry_and_cancel_need_the_right_token(
    store: TaskStore, client: httpx.AsyncClient, read_only: httpx.AsyncClient
) -> None:
    failed = await fail(store)
    pending = await store.enqueue("pkg.a", {})
    retry, cancel = f"/api/tasks/{failed}/retry", f"/api/tasks/{pending}/cancel"

    refused = await read_only.post(retry, headers={"Authorization": f"Bearer {TOKEN}"})
    assert refused.status_code == 403 and "read-only" in refused.json()["error"]
    assert 'data-action="retry"' not in (await read_only.get(f"/tasks/{failed}")).text
    for headers, says in (
        ({}, "need the header"),
        ({"Authorization": "Bearer wrong"}, "wrong token"),
        ({"Authorization": f"Basic {TOKEN}"}, "need the header"),
    ):
        answer = await client.post(retry, headers=headers)
        assert answer.status_code == 401 and answer.headers["www-authenticate"] == "Bearer"
        assert says in answer.json()["error"]
        assert (await client.post(cancel, headers=headers)).status_code == 401
    assert (await store.require(failed)).status is TaskStatus.FAILED
    assert (await store.require(pending)).status is TaskStatus.CREATED

    auth = {"Authorization": f"Bearer {TOKEN}"}
    assert (await client.post(retry, headers=auth)).json() == {"id": failed, "status": "created"}
    assert (await store.require(failed)).status is TaskStatus.CREATED
    assert (await client.post(cancel, headers=auth)).json()["status"] == "cancelled"
    assert (await store.require(pending)).status is TaskStatus.CANCELLED

    again = await client.post(cancel, headers=auth)  # as `taskstore cancel`: not an error
    assert (again.status_code, again.json()) == (200, {"id": pending, "status": "cancelled"})
    done = await finish(store, "pkg.a", queue="done", result={"ok": True})
    ended = await client.post(f"/api/tasks/{done}/cancel", headers=auth)
    assert ended.status_code == 409 and "it is completed" in ended.json()["error"]
    assert (await client.post("/api/tasks/987654/retry", headers=auth)).status_code == 404
    assert (await client.post("/api/tasks/x/retry", headers=auth)).status_code == 400
    assert (await client.get(retry)).status_code == 405


# --------------------------------------------------------------- the command
def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until_up(url: str, proc: subprocess.Popen[str], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.TransportError:
            time.sleep(0.1)
    raise AssertionError(f"the dashboard did not answer at {url}")


def test_command_serves_and_stops_cleanly(db_url: str) -> None:
    port = free_port()
    env = {**os.environ, "TASKSTORE_DASHBOARD_TOKEN": TOKEN}
    command = [sys.executable, "-m", "taskstore.dashboard", "--port", str(port)]
    proc = subprocess.Popen(
        [*command, "--database-url", db_url], env=env, text=True, stderr=subprocess.PIPE
    )
    try:
        wait_until_up(f"http://127.0.0.1:{port}/", proc)
        assert httpx.get(f"http://127.0.0.1:{port}/api/tasks").json()["tasks"] == []
        denied = httpx.post(f"http://127.0.0.1:{port}/api/tasks/1/retry")
        assert denied.status_code == 401  # the token came from the environment
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "retry, cancel, pause need the token" in err and TOKEN not in err


def test_a_port_in_use_or_an_address_not_here_is_one_line(tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'd.db'}"
    assert subprocess.run([sys.executable, "-m", "taskstore.cli", "migrate", "--database-url", url],
                          capture_output=True, timeout=60).returncode == 0  # fmt: skip
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        for args, why in [
            (["--port", str(port)], f"cannot listen on 127.0.0.1:{port}: Address already in use"),
            (["--host", "256.1.1.1"], "cannot listen on 256.1.1.1:8080: "),
        ]:
            result = subprocess.run(
                [sys.executable, "-m", "taskstore.dashboard", "--database-url", url, *args],
                capture_output=True,
                text=True,
                timeout=60,
            )
            lines = result.stderr.strip().splitlines()
            assert result.returncode == 1 and len(lines) == 1, result.stderr
            assert lines[0].startswith(f"taskstore: error: {why}")


def test_command_reports_an_unreachable_database_in_one_line() -> None:
    url = "postgresql://someone:hunter2@127.0.0.1:1/nowhere"
    result = subprocess.run(
        [sys.executable, "-m", "taskstore.dashboard", "--database-url", url],
        capture_output=True,
        text=True,
        timeout=60,
    )
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 1 and len(lines) == 1, result.stderr
    assert lines[0].startswith("taskstore: error: cannot reach the database at ")
    assert "hunter2" not in result.stderr and "***" in lines[0]


def test_command_without_the_web_extra_is_a_one_line_error() -> None:
    code = (
        "import sys; sys.modules['starlette'] = None\n"
        "import taskstore.dashboard as d\n"
        "d.cli_command(['--port', '1'], prog_name='taskstore dashboard')\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr == (
        "taskstore: error: the dashboard needs the web extra: pip install 'taskstore[web]'\n"
    )


def test_command_help_names_its_options() -> None:
    result = CliRunner().invoke(cli_command, ["--help"])
    assert result.exit_code == 0
    for option in ("--host", "--port", "--database-url", "--token", "TASKSTORE_DASHBOARD_TOKEN"):
        assert option in result.output
