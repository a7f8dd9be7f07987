"""WorkerConfig: how a worker runs; every field is a `taskstore-worker` option."""

from __future__ import annotations

import dataclasses

DEFAULT_MAX_ATTEMPTS = 3
#: The event loop held up this long (an async handler that blocks) is worth a warning.
BLOCKED_WARN_SECONDS = 1.0


@dataclasses.dataclass(frozen=True)
class WorkerConfig:
    """How a worker runs; every field is a `taskstore-worker` option."""

    queues: dict[str, int | None]  # queue -> its own concurrency limit (None: only the total)
    concurrency: int = 10
    lease_seconds: float = 30.0
    heartbeat_seconds: float | None = None  # default: a third of the lease
    rescue_seconds: float | None = None  # default: half the lease
    poll_min_seconds: float = 0.05
    poll_max_seconds: float | None = None  # default: the backend's (shorter without NOTIFY)
    shutdown_timeout: float = 30.0
    burst: bool = False
    ack_batch: int = 500  # most completions one statement carries
    ack_flush_at: int = 100  # flush at once from this many pending, else after the delay
    ack_delay_seconds: float = 0.005
    prune_seconds: float = 60.0  # how often one worker prunes finished tasks past retention
    prune_batch: int = 1000  # a batch holds the claim connection: claims go between batches
    depth_seconds: float = 15.0  # how often the queue-depth gauges are refreshed (metrics on)
    claim_linger_seconds: float = 0.002
    prefetch_below_seconds: float = 0.01  # claim ahead while handlers are this fast
    unserved_retry_seconds: float = 2.0  # a task with no handler here is offered again after
    unserved_grace_seconds: float | None = None  # default: the store's setting
    unserved_skip_seconds: float = 30.0  # claims leave a name another live worker serves
    wake_fd: int | None = None  # a pipe the supervisor relays NOTIFY into (see worker.wakeups)
    supervisor_pid: int | None = None  # stop once it has ended (see worker.supervised)

    @property
    def heartbeat_interval(self) -> float:
        return self.heartbeat_seconds or self.lease_seconds / 3

    @property
    def rescue_interval(self) -> float:
        return self.rescue_seconds or self.lease_seconds / 2
