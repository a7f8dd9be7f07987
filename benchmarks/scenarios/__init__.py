"""The scenarios, in the order they run; each module has NAME, ``title(cfg)`` and
``run(ctx, backend)``."""

from __future__ import annotations

from types import ModuleType

from benchmarks.scenarios import (
    churn,
    depth,
    drain,
    enqueue,
    flow,
    latency,
    memory,
    startup,
    sustained,
    workflow,
)

ALL: dict[str, ModuleType] = {
    m.NAME: m
    for m in (enqueue, drain, sustained, latency, depth, memory, flow, workflow, startup, churn)
}
