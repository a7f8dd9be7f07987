"""`taskstore-worker --processes N`: one supervisor, N worker processes.

The supervisor starts N ordinary `taskstore-worker` processes with the same options,
restarts one that dies (after a backoff that doubles up to half a minute, and is forgotten
once a process has run for a minute), and says why it died. SIGTERM or SIGINT is passed
to every worker once (a graceful stop: running tasks finish within the grace period); a
second one is passed on too (cut off now). It exits 0 when every worker exited 0.

Workers run in a session of their own, so a Ctrl-C on a terminal reaches them once,
through the supervisor, not twice. With ``--metrics-port P`` worker i serves on P + i.

On PostgreSQL the supervisor holds the host's one LISTEN connection and relays its
notifications to the workers through pipes (`worker.wakeups`), so the database sees two
connections per worker process and one for the supervisor.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence

from taskstore.logs import get_logger
from worker.wakeups import WakeRelay

_BACKOFF_FIRST, _BACKOFF_MAX = 1.0, 30.0
_HEALTHY_AFTER = 60.0  # a process that ran this long starts its next restart's backoff anew


@dataclasses.dataclass
class _Slot:
    index: int
    argv: list[str]
    proc: subprocess.Popen[bytes] | None = None
    started: float = 0.0
    backoff: float = _BACKOFF_FIRST
    restart_at: float | None = None
    exit_code: int | None = None
    relay: WakeRelay | None = None

    def start(self) -> None:
        if self.relay is None:
            self.proc = subprocess.Popen(self.argv, start_new_session=True)
        else:
            wake_fd = self.relay.pipe_for(self.index)
            try:
                argv = [*self.argv, "--wake-fd", str(wake_fd)]
                self.proc = subprocess.Popen(argv, start_new_session=True, pass_fds=(wake_fd,))
            finally:
                os.close(wake_fd)  # the worker has its copy
        self.started, self.restart_at, self.exit_code = time.monotonic(), None, None


def child_argv(args: Sequence[str], index: int, metrics_port: int | None) -> list[str]:
    """A worker's command line: the supervisor's, without --processes (and with its own
    metrics port)."""
    argv, skip = [], False
    for arg in args:
        if skip:
            skip = False
        elif arg == "--processes":
            skip = True
        elif not arg.startswith("--processes="):
            argv.append(arg)
    if metrics_port is not None:
        argv += ["--metrics-port", str(metrics_port + index)]
    return [sys.executable, "-m", "worker.cli", *argv]


def supervise(
    args: Sequence[str], count: int, metrics_port: int | None = None, *, url: str | None = None
) -> int:
    """Run `count` workers until a signal stops them; returns the exit code."""
    log = get_logger("taskstore.supervisor")
    relay = WakeRelay(url)
    relayed = relay.start()
    slots = [
        _Slot(i, child_argv(args, i, metrics_port), relay=relay if relayed else None)
        for i in range(count)
    ]
    received: list[int] = []

    def forward(signum: int, _frame: object) -> None:
        received.append(signum)
        for slot in slots:
            if slot.proc is not None and slot.proc.poll() is None:
                slot.proc.send_signal(signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    for slot in slots:
        slot.start()
    pids = [s.proc.pid for s in slots if s.proc]
    log.info("supervisor started", processes=count, pids=pids, relays_notify=relayed)
    while not (received and all(s.exit_code is not None for s in slots)):
        for slot in slots:
            _watch(slot, stopping=bool(received), log=log)
        time.sleep(0.1)
    codes = [s.exit_code for s in slots]
    log.info("supervisor stopped", exit_codes=codes)
    return 0 if all(code == 0 for code in codes) else 1


def _watch(slot: _Slot, *, stopping: bool, log: object) -> None:
    """Note a worker's exit; restart it when it is due (not while stopping)."""
    now = time.monotonic()
    if slot.proc is not None and slot.exit_code is None:
        code = slot.proc.poll()
        if code is None:
            return
        slot.exit_code = code
        if stopping:
            return
        if now - slot.started >= _HEALTHY_AFTER:
            slot.backoff = _BACKOFF_FIRST
        slot.restart_at = now + slot.backoff
        log.warning(  # type: ignore[attr-defined]
            "worker process exited; restarting it",
            pid=slot.proc.pid,
            exit=_describe(code),
            restart_in=slot.backoff,
        )
        slot.backoff = min(slot.backoff * 2, _BACKOFF_MAX)
    elif not stopping and slot.restart_at is not None and now >= slot.restart_at:
        slot.start()


def _describe(code: int) -> str:
    if code < 0:
        return f"killed by {signal.Signals(-code).name}"
    return f"exit code {code}"


def cpu_count() -> int:
    """One worker process per core available to this process."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1
