"""A worker app that traces its attempts (OpenTelemetry SDK) and writes each finished span
as one JSON line to the file named by TEST_SPANS_FILE, for the cross-process trace test."""

from __future__ import annotations

import json
import os

from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult

from worker import NonRetryable, TaskContext, task
from worker.tracing import instrument


class _FileExporter(SpanExporter):
    def export(self, spans) -> SpanExportResult:
        with open(os.environ["TEST_SPANS_FILE"], "a") as out:
            for span in spans:
                doc = {
                    "name": span.name,
                    "trace_id": f"{span.context.trace_id:032x}",
                    "span_id": f"{span.context.span_id:016x}",
                    "parent_id": f"{span.parent.span_id:016x}" if span.parent else None,
                    "attributes": dict(span.attributes or {}),
                    "status": span.status.status_code.name,
                }
                out.write(json.dumps(doc) + "\n")
        return SpanExportResult.SUCCESS


provider = TracerProvider()
provider.add_span_processor(SimpleSpanProcessor(_FileExporter()))
trace.set_tracer_provider(provider)
instrument()


@task(name="traced.work")
async def work(ctx: TaskContext, fail: bool = False) -> str:
    if fail:
        raise NonRetryable("asked to fail")
    return "done"
