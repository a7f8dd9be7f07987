"""The dashboard's flow control and its warning about tasks nobody runs, on SQLite and
PostgreSQL: each queue's settings and paused mark on the overview, pause / resume through
the API (token-guarded, really changing the store), `GET /api/queues`, and the list of
tasks no live worker can run.

Like test_dashboard.py, the app runs in the test's event loop through httpx's ASGI
transport on the fixture's opened `TaskStore`.
"""

from __future__ import annotations

import html
import re
from collections.abc import AsyncIterator

import pytest

from taskstore import TaskStore

pytest.importorskip("starlette", reason="the dashboard needs the web extra (starlette)")
httpx = pytest.importorskip("httpx", reason="the dashboard tests need httpx")

from tests.integration.dashboard_helpers import (  # noqa: E402
    TOKEN,
    client_for,
    register_worker,
)

AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
async def client(store: TaskStore) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(store, TOKEN) as opened:
        yield opened


@pytest.fixture
async def read_only(store: TaskStore) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(store) as opened:
        yield opened


def queue_row(page: str, queue: str) -> str:
    """The overview table's row of `queue` (AssertionError if it has none)."""
    found = re.search(rf'<tr data-queue="{queue}"[^>]*>(.*?)</tr>', page, re.S)
    assert found, f"no row for queue {queue!r}"
    return found.group(0)


def cells(row: str) -> list[str]:
    """The text of each cell of a table row, markup removed, but for the pause / resume
    button's (shown only with a token)."""
    texts = re.findall(r'<td(?! class="queue-action")[^>]*>(.*?)</td>', row, re.S)
    return [html.unescape(re.sub(r"<[^>]+>", "", t)).strip() for t in texts]


async def limited_queues(store: TaskStore) -> None:
    """email paused with tasks, partner-api limited, deploy-later configured and empty."""
    for _ in range(2):
        await store.enqueue("pkg.mail.send", {}, queue="email")
    await store.enqueue("pkg.partner.sync", {}, queue="partner-api", concurrency_key="t-1")
    await store.enqueue("pkg.media.probe", {}, queue="media")
    await store.pause_queue("email")
    await store.set_queue("partner-api", concurrency=3, rate="10/1m", key_concurrency=1)
    await store.set_queue("deploy-later", concurrency=2)


# ------------------------------------------------------------------ overview
async def test_overview_shows_each_queues_settings_next_to_its_counts(
    store: TaskStore, client: httpx.AsyncClient
) -> None:
    await limited_queues(store)
    for path in ("/", "/partials/overview"):
        page = (await client.get(path)).text
        # queue, concurrency, rate, key concurrency, then the counts: waiting, created, ...
        partner = cells(queue_row(page, "partner-api"))
        assert partner[:6] == ["partner-api", "3", "10/1m", "1", "0", "1"]
        assert cells(queue_row(page, "media"))[:6] == ["media", "-", "-", "-", "0", "1"]
        deploy = cells(queue_row(page, "deploy-later"))  # settings, no task yet
        assert deploy[:4] == ["deploy-later", "2", "-", "-"] and set(deploy[4:12]) == {"0"}
        assert 'title="at most 10 starts in any 1m, across all workers"' in page


async def test_overview_marks_a_paused_queue_and_offers_resume_only_with_a_token(
    store: TaskStore, client: httpx.AsyncClient, read_only: httpx.AsyncClient
) -> None:
    await limited_queues(store)
    page = (await client.get("/")).text
    email, media = queue_row(page, "email"), queue_row(page, "media")
    assert 'class="paused"' in email and '<span class="badge s-paused"' in email
    assert cells(email)[0] == "email paused" and cells(email)[5] == "2"
    assert "s-paused" not in media and "s-paused" not in queue_row(page, "partner-api")
    assert 'data-action="resume" data-url="api/queues/email/resume"' in email
    assert 'data-action="pause" data-url="api/queues/media/pause"' in media
    partial = (await client.get("/partials/overview")).text
    assert 'data-action="resume"' in queue_row(partial, "email")

    plain = (await read_only.get("/")).text
    assert '<span class="badge s-paused"' in queue_row(plain, "email")
    assert 'data-action="pause"' not in plain and 'data-action="resume"' not in plain
    assert 'data-action="resume"' not in (await read_only.get("/partials/overview")).text


# ------------------------------------------------------------- pause / resume
async def test_pause_and_resume_need_the_token(
    store: TaskStore, client: httpx.AsyncClient, read_only: httpx.AsyncClient
) -> None:
    await store.enqueue("pkg.mail.send", {}, queue="email")
    pause, resume = "/api/queues/email/pause", "/api/queues/email/resume"

    refused = await read_only.post(pause, headers=AUTH)
    assert refused.status_code == 403 and "read-only" in refused.json()["error"]
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {TOKEN}"}):
        answer = await client.post(pause, headers=headers)
        assert answer.status_code == 401 and answer.headers["www-authenticate"] == "Bearer"
        assert "pause" in answer.json()["error"]
        assert (await client.post(resume, headers=headers)).status_code == 401
    [email] = await store.queues()
    assert email.paused is False
    assert (await client.get(pause)).status_code == 405


async def test_pause_and_resume_with_the_token_change_the_store(
    store: TaskStore, client: httpx.AsyncClient
) -> None:
    await store.enqueue("pkg.mail.send", {}, queue="email")
    await store.set_queue("email", concurrency=2, rate="5/1s")

    paused = await client.post("/api/queues/email/pause", headers=AUTH)
    assert paused.status_code == 200
    assert paused.json() == {
        "name": "email",
        "paused": True,
        "concurrency": 2,
        "rate": "5/1s",
        "key_concurrency": None,
    }
    [email] = await store.queues()
    assert email.paused is True and email.concurrency == 2  # the limits stay
    assert "s-paused" in queue_row((await client.get("/")).text, "email")
    assert (await client.post("/api/queues/email/pause", headers=AUTH)).json()["paused"]

    resumed = await client.post("/api/queues/email/resume", headers=AUTH)
    assert resumed.status_code == 200 and resumed.json()["paused"] is False
    [email] = await store.queues()
    assert email.paused is False and email.rate == "5/1s"
    assert "s-paused" not in queue_row((await client.get("/")).text, "email")


async def test_a_queue_can_be_paused_before_it_has_tasks(
    store: TaskStore, client: httpx.AsyncClient
) -> None:
    answer = await client.post("/api/queues/later/pause", headers=AUTH)
    assert answer.status_code == 200 and answer.json()["paused"] is True
    [later] = await store.queues()
    assert (later.name, later.paused, later.counts) == ("later", True, {})
    assert "s-paused" in queue_row((await client.get("/")).text, "later")


async def test_a_bad_queue_name_is_a_one_line_400(
    store: TaskStore, client: httpx.AsyncClient
) -> None:
    for name in ("Bad!Queue", "UPPER", "-dash-first", "x" * 65):
        answer = await client.post(f"/api/queues/{name}/pause", headers=AUTH)
        assert answer.status_code == 400, name
        error = answer.json()["error"]
        assert error.startswith("invalid queue name") and "\n" not in error
        assert (await client.post(f"/api/queues/{name}/resume", headers=AUTH)).status_code == 400
    assert await store.queues() == []  # nothing written


async def test_api_queues_lists_settings_and_counts(
    store: TaskStore, client: httpx.AsyncClient
) -> None:
    assert (await client.get("/api/queues")).json() == {"queues": []}
    await limited_queues(store)
    doc = (await client.get("/api/queues")).json()
    by_name = {q["name"]: q for q in doc["queues"]}
    assert list(by_name) == ["deploy-later", "email", "media", "partner-api"]
    assert by_name["email"]["paused"] is True and by_name["email"]["counts"] == {"created": 2}
    assert by_name["deploy-later"] == {
        "name": "deploy-later",
        "paused": False,
        "concurrency": 2,
        "rate": None,
        "key_concurrency": None,
        "counts": {},
    }
    partner = by_name["partner-api"]
    assert (partner["concurrency"], partner["key_concurrency"]) == (3, 1)
    assert partner["rate"] == "10/1m"  # as `store.queues()` spells it


# ----------------------------------------------------------------- unserved
UNSERVED = "3 tasks of myapp.record in queue default: no live worker serves the queue"


async def test_unserved_warning_names_tasks_of_a_queue_no_live_worker_serves(
    store: TaskStore, client: httpx.AsyncClient
) -> None:
    assert 'id="unserved"' not in (await client.get("/")).text  # nothing waiting
    for n in range(3):
        await store.enqueue("myapp.record", {"n": n})
    await register_worker(store, "w-media", host="host-a", queues={"media": 4}, tasks=["x.y"])
    for path in ("/", "/partials/overview"):
        page = (await client.get(path)).text
        assert 'id="unserved"' in page and f'<span class="unserved-line">{UNSERVED}</span>' in page
    [item] = (await client.get("/api/overview")).json()["unserved"]
    assert item == {
        "queue": "default",
        "name": "myapp.record",
        "count": 3,
        "reason": "no live worker serves the queue",
    }


async def test_unserved_warning_names_a_task_no_worker_of_its_queue_can_run(
    store: TaskStore, client: httpx.AsyncClient
) -> None:
    await store.enqueue("myapp.record", {})
    await register_worker(store, "w-1", host="host-a", queues={"default": 2}, tasks=["x.y"])
    page = (await client.get("/")).text
    line = "1 task of myapp.record in queue default: no live worker has this handler"
    assert f'<span class="unserved-line">{line}</span>' in page


async def test_unserved_warning_disappears_once_a_worker_serves_the_tasks(
    store: TaskStore, client: httpx.AsyncClient
) -> None:
    for n in range(3):
        await store.enqueue("myapp.record", {"n": n})
    assert UNSERVED in (await client.get("/")).text  # no worker at all yet
    await register_worker(
        store, "w-default", host="host-a", queues={"default": 4}, tasks=["myapp.record"]
    )
    for path in ("/", "/partials/overview"):
        page = (await client.get(path)).text
        assert 'id="unserved"' not in page and "no live worker" not in page
    assert (await client.get("/api/overview")).json()["unserved"] == []
