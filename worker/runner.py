"""The worker runtime: wires the services of one worker process and runs them.

- `worker.fetcher.Fetcher` claims batches sized to free capacity (and orphans alone);
- `worker.outcomes.Outcomes` runs each attempt and records how it ended;
- `worker.completer.Completer` acknowledges completions in fenced batches and, at the
  end, hands back what a graceful stop cut off;
- `worker.maintenance` keeps leases alive, rescues expired ones, prunes, gauges depth.
They share one `worker.state.WorkerState` and reach the database only through
`taskstore.consumer.Consumer`: the worker never sees SQL.
"""

from __future__ import annotations

import collections
import functools
import os
import socket
import uuid
from pathlib import Path
from typing import Any

import anyio

from taskstore.consumer import STORE_ERRORS, Consumer
from taskstore.flow_admin import SETTINGS_PREFIX
from taskstore.logs import get_logger
from taskstore.settings import sqlite_file
from taskstore.store import TaskStore
from worker.completer import Completer
from worker.config import DEFAULT_MAX_ATTEMPTS, WorkerConfig
from worker.errors import HookFailed
from worker.execution import Running
from worker.fetcher import Fetcher
from worker.maintenance import (
    FileIdentity,
    Heartbeat,
    depth_loop,
    file_identity,
    prune_loop,
    rescue_loop,
    rescue_once,
    watch_file,
    watch_loop,
)
from worker.metrics import NoMetrics
from worker.outcomes import Outcomes
from worker.registry import Registry
from worker.scheduler import run_schedules
from worker.state import UNRECORDED, WorkerState
from worker.supervised import watch_supervisor
from worker.wakeups import read_relayed

log = get_logger("taskstore.worker")
__all__ = ["DEFAULT_MAX_ATTEMPTS", "Worker", "WorkerConfig", "new_worker_id"]


def new_worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


class Worker:
    """Claims and runs tasks of the configured queues until stopped (or drained, in burst)."""

    def __init__(
        self,
        store: TaskStore,
        registry: Registry,
        config: WorkerConfig,
        worker_id: str | None = None,
        metrics: NoMetrics | None = None,
        consumer: Consumer | None = None,
    ) -> None:
        self.store = store
        self.registry = registry
        self.config = config
        self.worker_id = worker_id or new_worker_id()
        metrics = metrics or NoMetrics()
        self.log = log.bind(worker=self.worker_id)
        self.state = WorkerState(config, self.worker_id, self.log, metrics)
        self.consumer = consumer or Consumer(store, self.worker_id, config.lease_seconds)
        self.completer = Completer(self.state, self.consumer)
        self.outcomes = Outcomes(self.state, self.consumer, self.completer, registry, store)
        self.fetcher = Fetcher(self.state, self.consumer, self.outcomes, self.completer)
        self.heartbeats = Heartbeat(self.state, self.consumer, self.completer, registry)
        self._watched: tuple[Path, FileIdentity] | None = None

    @property
    def running(self) -> dict[int, Running]:
        return self.state.running

    @property
    def in_flight(self) -> collections.Counter[str]:
        """Attempts claimed and not yet recorded, per queue."""
        return self.state.in_flight

    @property
    def stopping(self) -> bool:
        return self.state.stopping

    @property
    def counts(self) -> collections.Counter[str]:
        return self.state.counts

    @property
    def resources(self) -> dict[str, Any]:
        """What startup hooks load once per process; handlers see it as `ctx.resources`."""
        return self.outcomes.resources

    async def heartbeat(self) -> None:
        """Extend every lease this worker holds and refresh its registry row, now."""
        await self.heartbeats.beat()

    # ------------------------------------------------------------- lifecycle
    def stop(self) -> None:
        """Stop claiming; running handlers get `shutdown_timeout` to finish."""
        self.state.stopping = True
        self.state.signal()

    def cut_off(self) -> None:
        """Stop now: cancel running handlers; their tasks are handed back to run again."""
        self.stop()
        for run in list(self.state.running.values()):
            run.stop("shutdown")

    async def run(self) -> None:
        await self._hooks(self.registry.startup, "startup")
        config = self.config
        # Before the start is logged: a reset with `rm` from then on is seen.
        self._watched = self._database_file()
        self.log.info(
            "worker started",
            database=self.store.settings.safe_url,
            queues=config.queues,
            concurrency=config.concurrency,
            burst=config.burst,
        )
        self._log_serving()
        try:
            await self.heartbeat()  # register at once, so operators see the worker start
            if config.burst:  # its rescue loop may never come round: one pass first
                await rescue_once(self.state, self.consumer)
            async with anyio.create_task_group() as services:
                self._start_services(services)
                try:
                    await self.fetcher.run()
                    if config.burst and not self.state.stopping:
                        await self._say_what_is_left()
                    await self._drain()
                finally:
                    await self.outcomes.cancel_leftovers()
                await self.completer.hand_back()
                await self.completer.flush(final=True)
                services.cancel_scope.cancel()
            if config.burst and (lost := self.state.counts[UNRECORDED]):
                self.state.failure = (
                    f"the burst run ended with {lost} task outcome(s) the database did not "
                    "take (see the warnings above): those tasks run again once their "
                    "leases expire"
                )
        finally:
            try:
                await self.heartbeats.unregister()
            finally:
                await self.consumer.close()
            await self._hooks(self.registry.shutdown, "shutdown")
            self.log.info("worker stopped", **dict(self.state.counts))

    def _log_serving(self) -> None:
        """Every task name this worker serves, by queue, and any handler whose queue it
        does not serve (those tasks wait for another worker)."""
        known, queues = self.registry.tasks.values(), self.config.queues
        served = {q: sorted(d.name for d in known if d.queue == q) for q in queues}
        idle = sorted(d.name for d in known if d.queue not in queues)
        self.log.info("serving tasks", queues=served, **({"not_served": idle} if idle else {}))

    def _start_services(self, services: anyio.abc.TaskGroup) -> None:
        state, consumer = self.state, self.consumer
        services.start_soon(self.heartbeats.run)
        services.start_soon(rescue_loop, state, consumer)
        services.start_soon(prune_loop, state, consumer, self.store.settings.retention_seconds)
        services.start_soon(self.completer.run)
        services.start_soon(watch_loop, state, self.registry)
        if self._watched is not None:
            services.start_soon(watch_file, state, *self._watched, self.stop)
        if type(state.metrics) is not NoMetrics:
            services.start_soon(depth_loop, state, consumer)
        if self.config.supervisor_pid is not None:
            services.start_soon(watch_supervisor, self.config.supervisor_pid, self.stop, self.log)
        if not self.config.burst:
            services.start_soon(self._listen)
            served = [d for d in self.registry.periodic() if d.queue in self.config.queues]
            ticks = functools.partial(run_schedules, stopping=lambda: state.stopping)
            services.start_soon(ticks, consumer, served)

    def _database_file(self) -> tuple[Path, FileIdentity] | None:
        """The SQLite file this worker opened and its identity, to see it replaced."""
        given = sqlite_file(self.store.settings)
        path = None if given is None else given.resolve()
        opened = None if path is None else file_identity(path)
        return None if path is None or opened is None else (path, opened)

    async def _listen(self) -> None:
        """Wake-ups: relayed by our supervisor, or on a LISTEN connection of our own."""
        if self.config.wake_fd is not None:
            await read_relayed(self.config.wake_fd, self._on_notify)
            self.log.warning("the supervisor is gone: listening on a connection of our own")
        await self.consumer.listen(self._on_notify)

    async def _hooks(self, hooks: list[Any], phase: str) -> None:
        for hook in hooks:
            try:
                result = hook(self.resources)
                if hasattr(result, "__await__"):
                    await result
            except Exception as exc:
                name = f"{hook.__module__}.{getattr(hook, '__qualname__', hook)}"
                message = f"{phase} hook {name} failed: {type(exc).__name__}: {exc}"
                raise HookFailed(message) from exc
        if hooks:
            self.log.info(f"{phase} hooks ran", count=len(hooks))

    def _on_notify(self, payload: str) -> None:
        queues = payload.split(",")
        for name in queues:
            if name.startswith(SETTINGS_PREFIX):  # a queue was paused, resumed or limited
                self.consumer.queue_changed(name.removeprefix(SETTINGS_PREFIX))
        if payload == "*" or not self.config.queues.keys().isdisjoint(
            q.removeprefix(SETTINGS_PREFIX) for q in queues
        ):
            self.state.signal()

    async def _say_what_is_left(self) -> None:
        """A burst run starts only what it can now: name what it leaves for a later run
        (a snooze, a retry's backoff, a delay, a paused queue), which would otherwise
        look lost."""
        queues = list(self.config.queues)
        try:
            count, first = await self.consumer.waiting(queues)
        except STORE_ERRORS:
            return  # a note only: the run itself is done
        paused = [q for q in queues if self.consumer.held_by(q) == "paused"]
        if count:
            self.log.info(
                "burst done; tasks are left for a later run",
                tasks=count,
                first_due_in_seconds=max(0.0, round(first or 0.0, 1)),
                **({"paused": paused} if paused else {}),
            )

    async def _drain(self) -> None:
        """Give running handlers the grace period, then cut off what is left."""
        with anyio.move_on_after(self.config.shutdown_timeout):
            while self.state.running:
                await self.state.wait(None)
        for run in list(self.state.running.values()):
            run.stop("shutdown")
