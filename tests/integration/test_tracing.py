"""OpenTelemetry: the enqueue's producer span travels with the task (its traceparent on
the row) and each attempt's consumer span continues it, in this process and in a worker
process of its own."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import anyio
import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from taskstore import TaskStatus, TaskStore
from tests.helpers.processes import start_worker
from worker import Registry, TaskContext, Worker, WorkerConfig, task
from worker.tracing import instrument

_EXPORTER = InMemorySpanExporter()


@pytest.fixture(scope="module", autouse=True)
def _tracer_provider():
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):  # the global provider is set once
        provider = TracerProvider()
        trace.set_tracer_provider(provider)
    provider.add_span_processor(SimpleSpanProcessor(_EXPORTER))
    yield


@pytest.fixture(autouse=True)
def _fresh_spans():
    _EXPORTER.clear()


def _spans(name_prefix: str) -> list:
    return [s for s in _EXPORTER.get_finished_spans() if s.name.startswith(name_prefix)]


async def test_an_attempt_span_continues_the_enqueuers_trace(store: TaskStore) -> None:
    reg = Registry()

    @task(name="tr.ok", registry=reg)
    async def ok(ctx: TaskContext) -> int:
        return 1

    @task(name="tr.bad", registry=reg, max_attempts=1)
    async def bad(ctx: TaskContext) -> None:
        raise RuntimeError("no")

    instrument(reg)
    instrument(reg)  # once, however often
    tracer = trace.get_tracer("test")
    with tracer.start_as_current_span("request") as request:
        good_id = await store.enqueue("tr.ok")
        bad_id = await store.enqueue("tr.bad")
    await Worker(store, reg, WorkerConfig(queues={"default": None}, burst=True)).run()
    assert (await store.require(bad_id)).status is TaskStatus.FAILED
    producers = _spans("taskstore enqueue")
    assert len(producers) == 2
    assert all(p.parent.span_id == request.get_span_context().span_id for p in producers)
    runs = {s.attributes["taskstore.task.id"]: s for s in _spans("taskstore run")}
    assert set(runs) == {good_id, bad_id}
    for task_id, producer in zip((good_id, bad_id), producers, strict=True):
        run = runs[task_id]
        assert run.context.trace_id == producer.context.trace_id
        assert run.parent.span_id == producer.context.span_id
        assert run.kind is trace.SpanKind.CONSUMER and producer.kind is trace.SpanKind.PRODUCER
    assert runs[good_id].attributes["taskstore.outcome"] == "completed"
    assert runs[bad_id].attributes["taskstore.outcome"] == "RuntimeError"
    assert runs[bad_id].status.status_code is trace.StatusCode.ERROR
    assert runs[good_id].attributes["taskstore.task.name"] == "tr.ok"


async def test_one_trace_runs_from_the_producer_to_an_attempt_in_another_process(
    store: TaskStore, db_url: str, tmp_path: Path
) -> None:
    spans_file = tmp_path / "spans.jsonl"
    with trace.get_tracer("test").start_as_current_span("request"):
        ids = await store.enqueue_many(
            [{"name": "traced.work"}, {"name": "traced.work", "payload": {"fail": True}}]
        )
    [producer] = _spans("taskstore enqueue")
    worker = start_worker(
        db_url,
        "--queue",
        "default",
        app="tests.apps.traced",
        exec_log=tmp_path / "w.exec",
        env={"TEST_SPANS_FILE": str(spans_file)},
    )
    try:
        with anyio.fail_after(60):
            while True:
                statuses = {(await store.require(i)).status for i in ids}
                if statuses == {TaskStatus.COMPLETED, TaskStatus.FAILED}:
                    break
                await anyio.sleep(0.1)
    finally:
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(60) == 0
    runs = [json.loads(line) for line in spans_file.read_text().splitlines()]
    assert len(runs) == 2
    trace_id, span_id = f"{producer.context.trace_id:032x}", f"{producer.context.span_id:016x}"
    assert {(r["trace_id"], r["parent_id"]) for r in runs} == {(trace_id, span_id)}
    assert sorted(r["attributes"]["taskstore.outcome"] for r in runs) == [
        "NonRetryable",
        "completed",
    ]
