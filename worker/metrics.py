"""Prometheus metrics for a worker (optional extra ``metrics``: prometheus-client).

`NoMetrics` is the default: the runner calls the same methods and they do nothing, so the
hot path pays for metrics only when they are switched on with ``--metrics-port``.
"""

from __future__ import annotations

import time
from typing import Any

from taskstore.errors import InvalidInput
from worker.wrappers import CallNext, Middleware

_DURATION_BUCKETS = (0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 1800)
_BATCH_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000)


class NoMetrics:
    """Metrics switched off."""

    def started(self, queue: str, name: str) -> None: ...

    def ran(self, queue: str, name: str, seconds: float) -> None: ...

    def ended(self, queue: str, name: str, outcome: str) -> None: ...

    def claimed(self, count: int) -> None: ...

    def rescued(self, count: int) -> None: ...

    def depth(self, counts: dict[str, int]) -> None: ...

    def held_back(self, counts: dict[tuple[str, str], int]) -> None: ...

    def attempt_middleware(self) -> Middleware | None:
        """What measures each attempt (`worker.wrappers`), or None: nothing to measure."""
        return None


class PrometheusMetrics(NoMetrics):
    """Counters, histograms and gauges in their own registry, served over HTTP."""

    def __init__(self) -> None:
        try:
            import prometheus_client as prom
        except ImportError:
            raise InvalidInput(
                "--metrics-port needs the metrics extra: pip install 'taskstore[metrics]'"
            ) from None
        self._prom = prom
        self.registry = prom.CollectorRegistry()
        self._depth_seen: set[str] = set()
        labels = ["queue", "name"]
        counter = self._counter
        self._started = counter("tasks_started", "Attempts started", labels)
        self._outcomes = counter(
            "tasks_finished", "Attempts ended, by outcome", [*labels, "outcome"]
        )
        self._duration = prom.Histogram(
            "taskstore_task_duration_seconds",
            "Handler run time",
            labels,
            buckets=_DURATION_BUCKETS,
            registry=self.registry,
        )
        self._batch = prom.Histogram(
            "taskstore_claim_batch_size",
            "Tasks per claim",
            buckets=_BATCH_BUCKETS,
            registry=self.registry,
        )
        self._rescues = counter("lease_rescues", "Tasks taken back from expired leases", [])
        self._depth = prom.Gauge(
            "taskstore_queue_depth", "Claimable tasks due now", ["queue"], registry=self.registry
        )
        self._held = prom.Gauge(
            "taskstore_queue_held_back",
            "Tasks due now that flow control holds back, by the limit that does",
            ["queue", "limit"],
            registry=self.registry,
        )
        self._children: dict[tuple[str, ...], Any] = {}

    def _counter(self, name: str, doc: str, labels: list[str]) -> Any:
        return self._prom.Counter(f"taskstore_{name}", doc, labels, registry=self.registry)

    def _child(self, metric: Any, *values: str) -> Any:
        # labels() allocates and hashes on every call; cache the children
        key = (id(metric), *values)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*values)
        return child

    def serve(self, port: int, host: str = "127.0.0.1") -> None:
        self._prom.start_http_server(port, addr=host, registry=self.registry)

    def started(self, queue: str, name: str) -> None:
        self._child(self._started, queue, name).inc()

    def ran(self, queue: str, name: str, seconds: float) -> None:
        self._child(self._duration, queue, name).observe(seconds)

    def ended(self, queue: str, name: str, outcome: str) -> None:
        """An attempt's ending as recorded (completed, error, snoozed, abandoned): known
        only once the worker has written it, after the handler and its middleware (a
        result that is not JSON, rows the completion could not flush, fail it then)."""
        self._child(self._outcomes, queue, name, outcome).inc()

    def attempt_middleware(self) -> Middleware:
        return self._measure

    async def _measure(self, ctx: Any, call_next: CallNext) -> Any:
        """Middleware: count the attempt's start, and time the handler (`ended` counts
        the outcome)."""
        self.started(ctx.queue, ctx.name)
        began = time.perf_counter()
        try:
            return await call_next()
        finally:
            self.ran(ctx.queue, ctx.name, time.perf_counter() - began)

    def claimed(self, count: int) -> None:
        self._batch.observe(count)

    def rescued(self, count: int) -> None:
        self._rescues.inc(count)

    def depth(self, counts: dict[str, int]) -> None:
        # A queue that emptied is missing from the counts: it reads 0, not its last depth.
        for queue in self._depth_seen - counts.keys():
            self._child(self._depth, queue).set(0)
        self._depth_seen = set(counts)
        for queue, count in counts.items():
            self._child(self._depth, queue).set(count)

    def held_back(self, counts: dict[tuple[str, str], int]) -> None:
        for (queue, limit), count in counts.items():
            self._child(self._held, queue, limit).set(count)
