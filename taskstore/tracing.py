"""OpenTelemetry on the producer side: a span around each enqueue, whose W3C
``traceparent`` every task of the call carries, so each attempt's span (see
`taskstore.contrib.otel`) continues the enqueuer's trace, in whatever process runs it.

Nothing happens (nothing is even imported) unless the application imported OpenTelemetry
itself, as configuring its SDK does; with the API alone spans do not record and no
context is stored.
"""

from __future__ import annotations

import contextlib
import dataclasses
import sys
from collections.abc import Iterator, Sequence
from typing import Any

from taskstore.records import NewTask

TRACER = "taskstore"


@contextlib.contextmanager
def enqueue_span(batch: Sequence[NewTask]) -> Iterator[Sequence[NewTask]]:
    """The batch, its tasks carrying the trace context of a producer span open meanwhile."""
    trace = sys.modules.get("opentelemetry.trace")
    if trace is None or not batch:  # no tracing configured in this process
        yield batch
        return
    from opentelemetry import propagate

    names = sorted({t.name for t in batch})
    attributes: dict[str, Any] = {
        "messaging.system": "taskstore",
        "messaging.operation.type": "send",
        "messaging.batch.message_count": len(batch),
        "taskstore.task.name": names[0] if len(names) == 1 else ",".join(names[:10]),
    }
    tracer = trace.get_tracer(TRACER)
    name = f"taskstore enqueue {names[0]}" if len(names) == 1 else "taskstore enqueue"
    with tracer.start_as_current_span(name, kind=trace.SpanKind.PRODUCER, attributes=attributes):
        carrier: dict[str, str] = {}
        propagate.inject(carrier)
        traceparent = carrier.get("traceparent")
        if traceparent is None:  # no SDK: nothing records, nothing to continue
            yield batch
            return
        yield [dataclasses.replace(t, trace_context=traceparent) for t in batch]
