"""What a scenario gets from the harness: the configuration, fresh databases, the peer."""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import AsyncIterator, Callable, Coroutine
from pathlib import Path
from typing import Any

from benchmarks import pgq_peer
from benchmarks.config import Config
from benchmarks.databases import BenchDatabase, fresh_database
from benchmarks.report import say
from benchmarks.scenarios.common import guarded


@dataclasses.dataclass(frozen=True)
class Context:
    cfg: Config
    scratch: Path

    @contextlib.asynccontextmanager
    async def database(self, backend: str) -> AsyncIterator[BenchDatabase]:
        """A fresh, migrated database for one scenario on `backend`."""
        async with fresh_database(backend, self.cfg.postgres_url, self.scratch) as db:
            yield db

    async def peer(
        self,
        backend: str,
        work: Callable[[], Coroutine[Any, Any, dict]],
        errors: list[str],
    ) -> dict:
        """Run the pgqueuer side of a scenario, or report why it is skipped."""
        reason = pgq_peer.skip_reason(backend)
        if reason is not None:
            return {"skipped": reason}
        say("  pgqueuer ...")
        return await guarded("pgqueuer", work(), errors)
