"""A worker's Prometheus endpoint shows its counters moving."""

from __future__ import annotations

import signal
import urllib.request
from pathlib import Path

import anyio

from taskstore import TaskStore
from tests.helpers.processes import free_port, start_worker, stderr_of


def scrape(port: int) -> dict[str, float]:
    body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    samples = {}
    for line in body.splitlines():
        if line.startswith("taskstore_"):
            key, _, value = line.rpartition(" ")
            samples[key] = float(value)
    return samples


async def test_metrics_endpoint_counts_started_and_completed_tasks(
    store: TaskStore, db_url: str, tmp_path: Path
) -> None:
    await store.enqueue_many([{"name": "tests.noop"} for _ in range(50)])
    port = free_port()
    worker = start_worker(db_url, "--metrics-port", str(port), exec_log=tmp_path / "x.log")
    try:
        completed = (
            'taskstore_tasks_finished_total{name="tests.noop",outcome="completed",queue="default"}'
        )
        with anyio.fail_after(30):
            while True:
                try:
                    samples = await anyio.to_thread.run_sync(scrape, port)
                except OSError:
                    samples = {}
                if samples.get(completed) == 50:
                    break
                await anyio.sleep(0.2)
        started = 'taskstore_tasks_started_total{name="tests.noop",queue="default"}'
        assert samples[started] == 50
        assert samples["taskstore_claim_batch_size_count"] >= 1
        assert (
            samples['taskstore_task_duration_seconds_count{name="tests.noop",queue="default"}']
            == 50
        )
    finally:
        worker.send_signal(signal.SIGTERM)
        assert await anyio.to_thread.run_sync(worker.wait, 30) == 0, stderr_of(tmp_path / "x.log")


async def test_the_held_back_gauge_counts_due_tasks_a_paused_queue_holds(store: TaskStore) -> None:
    from worker import Registry, Worker, WorkerConfig
    from worker.metrics import PrometheusMetrics

    await store.pause_queue("default")
    await store.enqueue_many([{"name": "t.x"} for _ in range(5)])
    metrics = PrometheusMetrics()
    config = WorkerConfig(queues={"default": None}, depth_seconds=0.05, poll_max_seconds=0.05)
    worker = Worker(store, Registry(), config, metrics=metrics)

    def held(limit: str) -> float | None:
        labels = {"queue": "default", "limit": limit}
        return metrics.registry.get_sample_value("taskstore_queue_held_back", labels)

    async with anyio.create_task_group() as group:
        group.start_soon(worker.run)
        with anyio.fail_after(20):
            while held("paused") != 5:  # noqa: ASYNC110 - the gauge is refreshed by a loop
                await anyio.sleep(0.05)
        worker.stop()
    assert (held("concurrency"), held("rate")) == (0, 0)
    assert {s.queue: s.counts for s in await store.stats()} == {"default": {"created": 5}}


async def test_the_depth_gauge_falls_to_zero_once_the_queue_is_drained(store: TaskStore) -> None:
    from worker import Registry, TaskContext, Worker, WorkerConfig, task
    from worker.metrics import PrometheusMetrics

    registry = Registry()

    @task(name="t.quick", registry=registry)
    async def quick(ctx: TaskContext) -> None:
        return None

    await store.pause_queue("default")
    await store.enqueue_many([{"name": "t.quick"} for _ in range(3)])
    metrics = PrometheusMetrics()
    config = WorkerConfig(
        queues={"default": None, "idle": None}, depth_seconds=0.05, poll_max_seconds=0.05
    )
    worker = Worker(store, registry, config, metrics=metrics)

    def depth(queue: str) -> float | None:
        return metrics.registry.get_sample_value("taskstore_queue_depth", {"queue": queue})

    async with anyio.create_task_group() as group:
        group.start_soon(worker.run)
        with anyio.fail_after(20):
            while depth("default") != 3:  # noqa: ASYNC110 - the gauge is refreshed by a loop
                await anyio.sleep(0.05)
            assert depth("idle") == 0  # a served queue with nothing due has a sample too
            await store.resume_queue("default")
            while depth("default") != 0:  # noqa: ASYNC110
                await anyio.sleep(0.05)
        worker.stop()
    assert {s.queue: s.counts for s in await store.stats()} == {"default": {"completed": 3}}
