"""Keyed claims made to weigh fewer candidates, so tests reach a deep queue's cases."""

from __future__ import annotations

from typing import Any

import pytest

from taskstore import TaskStore


def scan_at_most(store: TaskStore, monkeypatch: pytest.MonkeyPatch, scan: int) -> None:
    """Keyed claims of `store` weigh the first `scan` candidates in claim order (at
    least as many as they may take), in one statement or in its locked fallback."""
    for name in ("claim_keyed", "claim_limited"):
        claim = getattr(store.tasks, name)

        async def scanning(conn: Any, _claim: Any = claim, **options: Any) -> Any:
            return await _claim(conn, **options, scan=scan)

        monkeypatch.setattr(store.tasks, name, scanning)
