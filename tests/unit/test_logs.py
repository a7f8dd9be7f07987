"""Logging: each record reaches stderr whole, in one write."""

from __future__ import annotations

import structlog

from taskstore import logs


class _Writes:
    def __init__(self) -> None:
        self.calls: list[str] = []

    def write(self, text: str) -> int:
        self.calls.append(text)
        return len(text)

    def flush(self) -> None:
        pass

    def isatty(self) -> bool:
        return False


def test_each_record_is_written_whole_with_its_newline(monkeypatch) -> None:
    """Processes sharing a stderr (the workers of --processes) write records at once:
    a record written in two pieces can land beside another process's on one line."""
    stderr = _Writes()
    saved = structlog.get_config()
    monkeypatch.setattr("sys.stderr", stderr)
    monkeypatch.setattr(logs, "_configured", False)  # restored after the test
    try:
        logs.configure_logging("INFO")
        logs.get_logger("t").info("stopping", worker="w1")
    finally:
        structlog.configure(**saved)
    [record] = stderr.calls
    assert record.endswith("}\n") and '"event": "stopping"' in record
