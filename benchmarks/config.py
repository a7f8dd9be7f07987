"""What one harness invocation measures: sizes and durations, full or ``--quick``."""

from __future__ import annotations

import dataclasses

DEFAULT_POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
BACKENDS = ("sqlite", "postgres")


@dataclasses.dataclass(frozen=True)
class Config:
    """Every knob of a run; `for_run` fills the defaults of the full or quick profile."""

    quick: bool
    postgres_url: str
    tasks: int  # drain size, and the enqueue_many / raw insert count
    seconds: float  # sustained window
    concurrency: int  # worker --concurrency (pgqueuer: --batch-size)
    single_enqueues: int
    enqueue_batch: int = 1000
    producer_batch: int = 50
    producer_rate: float = 0.0  # tasks/s; 0 = as fast as the producer can
    latency_samples: int = 200
    latency_gap: float = 0.05
    depth_sizes: tuple[int, int] = (10_000, 1_000_000)
    depth_claimable: int = 5_000
    claim_batch: int = 100
    memory_tasks: int = 100_000
    processes: int = 1  # drain: worker processes of each queue, started together
    handler_ms: float = 0.0  # drain: how long each no-op handler sleeps
    pairs: int = 1  # flow: unlimited and limited drains, alternating; the median ratio
    minutes: float = 30.0  # churn: length of the run
    churn_rate: float = 500.0  # churn: the producer's steady rate, tasks/s

    @classmethod
    def for_run(
        cls,
        *,
        quick: bool,
        postgres_url: str,
        tasks: int | None = None,
        seconds: float | None = None,
        concurrency: int = 100,
        producer_rate: float = 0.0,
        processes: int = 1,
        minutes: float | None = None,
        handler_ms: float = 0.0,
        pairs: int = 1,
    ) -> Config:
        """The full profile, or the quick one CI runs; explicit sizes win over both."""
        drain = tasks or (2_000 if quick else 20_000)
        churn = {
            "minutes": minutes or (2.0 if quick else 30.0),
            "churn_rate": producer_rate or 500.0,
        }
        if quick:
            return cls(
                quick=True,
                postgres_url=postgres_url,
                tasks=drain,
                seconds=seconds or 3.0,
                concurrency=concurrency,
                single_enqueues=min(300, drain),
                producer_rate=producer_rate,
                latency_samples=40,
                depth_sizes=(10_000, 100_000),
                depth_claimable=1_000,
                memory_tasks=5_000,
                processes=processes,
                handler_ms=handler_ms,
                pairs=pairs,
                **churn,
            )
        return cls(
            quick=False,
            postgres_url=postgres_url,
            tasks=drain,
            seconds=seconds or 10.0,
            concurrency=concurrency,
            single_enqueues=min(2_000, drain),
            producer_rate=producer_rate,
            processes=processes,
            handler_ms=handler_ms,
            pairs=pairs,
            **churn,
        )

    def public(self) -> dict[str, object]:
        """The configuration as reported in ``--json`` (no connection details)."""
        data = dataclasses.asdict(self)
        data.pop("postgres_url")
        return data
