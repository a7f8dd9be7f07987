"""structlog, configured once per process: JSON lines when not on a TTY, console on one."""

from __future__ import annotations

import logging
import sys
from typing import TextIO, cast

import structlog

_configured = False


class _Sink:
    """stderr for log records. Once it cannot be written (its terminal closed: EIO; the
    pipe's reader gone: EPIPE) records are dropped: a worker that lost its terminal still
    stops gracefully and hands its tasks back, where a failed write would crash it."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._gone = False

    def write(self, text: str) -> None:
        if not self._gone:
            try:
                self._stream.write(text)
            except OSError:
                self._gone = True

    def flush(self) -> None:
        if not self._gone:
            try:
                self._stream.flush()
            except OSError:
                self._gone = True


def configure_logging(level: str = "INFO", json_lines: bool | None = None) -> None:
    """Idempotent: the first call wins, later calls only adjust nothing."""
    global _configured
    if _configured:
        return
    _configured = True
    numeric = logging.getLevelName(level.upper())
    if not isinstance(numeric, int):
        numeric = logging.INFO
    if json_lines is None:
        json_lines = not sys.stderr.isatty()
    renderer = (
        structlog.processors.JSONRenderer()
        if json_lines
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info if json_lines else structlog.dev.set_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        # One write per record, newline included: processes sharing a stderr (the workers
        # of --processes) then never run two records together on one line.
        # structlog calls only `write` and `flush`, which is all a `_Sink` has.
        logger_factory=structlog.WriteLoggerFactory(file=cast(TextIO, _Sink(sys.stderr))),
        cache_logger_on_first_use=True,
    )


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    return structlog.get_logger(name)
