"""`taskstore-worker --processes N`: one supervisor, N worker processes.

The supervisor starts N ordinary `taskstore-worker` processes with the same options
(forked from a zygote that has imported the worker once, see `worker.zygote`; started as
new programs if it is gone), restarts one that dies (after a backoff that doubles up to
half a minute, and is forgotten once a process has run for a minute), and says why it
died. With ``--burst`` a worker that exits 0 has drained its queues and is not restarted.
A worker that exits 2 refused its options or settings (a bad --app, say): every start
would, so the supervisor stops the others and exits 2. A burst run in which a worker
died exits 1 (the tasks it held wait out their leases, unrun).
SIGTERM or SIGINT (or SIGHUP: the terminal closed) is passed to every worker (a graceful
stop: running tasks finish within the grace period); a second one, or a SIGQUIT, is
passed on as SIGQUIT (cut off now, see `worker.supervised`). It exits 0 when every worker
exited 0 (one that died before the stop and waited to be restarted counts as stopped). A
worker whose supervisor has ended (killed with SIGKILL, say) stops gracefully on its own
(`worker.supervised`).

Workers run in a session of their own, so a Ctrl-C on a terminal reaches them once,
through the supervisor, not twice. With ``--metrics-port P`` worker i serves on P + i.

On PostgreSQL the supervisor holds the host's one LISTEN connection and relays its
notifications to the workers through pipes (`worker.wakeups`), so the database sees two
connections per worker process and one for the supervisor.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

from taskstore import collector
from taskstore.logs import get_logger
from worker.supervised import CUT_OFF, STOPS
from worker.wakeups import WakeRelay
from worker.zygote import Zygote, ZygoteGone

_BACKOFF_FIRST, _BACKOFF_MAX = 1.0, 30.0
_HEALTHY_AFTER = 60.0  # a process that ran this long starts its next restart's backoff anew
LOST = -1000  # the exit code of a worker whose zygote died before it (unknown)
USAGE = 2  # bad options or settings (see `taskstore.errors`): a restart would fail alike
_STOP_DEATHS = {-int(stop) for stop in STOPS}  # exit codes of a worker a stop killed
WORKER_PROGRAM = (sys.executable, "-m", "worker.cli")


@dataclasses.dataclass
class _Slot:
    index: int
    argv: list[str]  # the worker's options
    pid: int = 0
    proc: subprocess.Popen[bytes] | None = None  # started as a new program (no zygote)
    started: float = 0.0
    backoff: float = _BACKOFF_FIRST
    restart_at: float | None = None
    exit_code: int | None = None
    died: int = 0  # exits that were not a stop, a drained burst or bad options
    relay: WakeRelay | None = None
    program: Sequence[str] = ()  # what starts a worker as a new program, before its options

    def start(self, zygote: Zygote | None) -> None:
        wake_fd = None if self.relay is None else self.relay.pipe_for(self.index)
        try:
            if zygote is not None:
                self.pid, self.proc = zygote.spawn(self.argv, wake_fd), None
            else:
                argv = [*(self.program or WORKER_PROGRAM), *self.argv]
                passed = () if wake_fd is None else (wake_fd,)
                if wake_fd is not None:
                    argv += ["--wake-fd", str(wake_fd)]
                self.proc = subprocess.Popen(argv, start_new_session=True, pass_fds=passed)
                self.pid = self.proc.pid
        finally:
            if wake_fd is not None:
                os.close(wake_fd)  # the worker has its copy
        self.started, self.restart_at, self.exit_code = time.monotonic(), None, None

    def ended(self, exits: dict[int, int]) -> int | None:
        """The worker's exit code once it has ended (`exits`: what the zygote reported)."""
        if self.proc is not None:
            return self.proc.poll()
        if self.pid in exits:
            return exits.pop(self.pid)
        return None

    def signal(self, signum: int) -> None:
        if self.pid and self.exit_code is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signum)


def child_argv(args: Sequence[str], index: int, metrics_port: int | None) -> list[str]:
    """A worker's options: the supervisor's, without --processes (and with its own
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
    return argv


def supervise(
    args: Sequence[str],
    count: int,
    metrics_port: int | None = None,
    *,
    url: str | None = None,
    run_worker: Callable[[list[str]], None] | None = None,
    program: Sequence[str] = WORKER_PROGRAM,
) -> int:
    """Run `count` workers until a signal stops them; returns the exit code. Workers are
    forked from a zygote that calls ``run_worker(options)`` (without it: new programs,
    `program` followed by the options)."""
    log = get_logger("taskstore.supervisor")
    zygote = None
    if run_worker is not None:
        try:
            zygote = Zygote.start(run_worker)  # before any thread: it forks this process
        except OSError as exc:
            log.warning("no zygote; starting workers as new programs", error=str(exc))
    collector.resume()  # the supervisor's start-up (its imports for the zygote) is over
    relay = WakeRelay(url)
    relayed = relay.start()
    watched = ["--supervisor-pid", str(os.getpid())]  # workers stop once this process ends
    slots = [
        _Slot(
            i,
            [*child_argv(args, i, metrics_port), *watched],
            relay=relay if relayed else None,
            program=program,
        )
        for i in range(count)
    ]
    received: list[int] = []
    burst = "--burst" in args

    def forward(signum: int, _frame: object) -> None:
        received.append(signum)
        for slot in slots:
            slot.signal(_passed(received))

    for stop in (*STOPS, CUT_OFF):
        signal.signal(stop, forward)
    for slot in slots:
        if received:  # a stop came while the others started: this one never starts
            slot.exit_code = 0
            continue
        zygote = _start(slot, zygote, log)
        if received:  # it came while this one started, maybe before its pid was known
            slot.signal(_passed(received))
    log.info(
        "supervisor started",
        processes=count,
        pids=[s.pid for s in slots],
        relays_notify=relayed,
        forked_from_zygote=zygote is not None,
    )
    while True:
        exits, zygote = _exits(zygote, slots, log, stopping=bool(received))
        for slot in slots:
            if _watch(slot, exits, stopping=bool(received), burst=burst, log=log):
                zygote = _start(slot, zygote, log)
        if not received and any(s.exit_code == USAGE for s in slots):
            log.error("a worker refused its options or settings; stopping the others")
            forward(signal.SIGTERM, None)
        # A burst worker killed outright is restarted to finish the drain; one that
        # exited (drained, or failed and said why) is done.
        if all(s.exit_code is not None for s in slots) and (
            received or (burst and all(s.restart_at is None for s in slots))
        ):
            break
        if zygote is not None:
            zygote.wait(0.1)  # woken at once by an exit it reports
        else:
            time.sleep(0.1)
    if zygote is not None:
        zygote.close()
    codes = [s.exit_code for s in slots]
    log.info("supervisor stopped", exit_codes=codes)
    if USAGE in codes:
        return USAGE
    died = sum(s.died for s in slots)
    if burst and died:
        # Its tasks wait out their leases, unrun: a job that ends with them is no success.
        log.warning("burst run ended after worker processes died", deaths=died)
        return 1
    if burst and not received and any(code != 0 for code in codes):
        log.warning("burst run ended after worker processes failed (said above)")
        return 1
    return 0 if all(_stopped(s, bool(received)) for s in slots) else 1


def _passed(received: list[int]) -> int:
    """The signal workers get for the stops received so far: the first as it came (a
    worker may have heard it from its sender too), any later one as CUT_OFF."""
    return CUT_OFF if len(received) > 1 or received[0] == CUT_OFF else received[0]


def _stopped(slot: _Slot, stopping: bool) -> bool:
    """Did the worker end as the stop asked? One that died before the stop was said so
    and would have been restarted: its exit is not the stop's, which a crash loop would
    otherwise fail on every deploy. One the stop killed was still starting (a running
    worker stops gracefully): it held no tasks."""
    if slot.exit_code == 0 or slot.restart_at is not None:
        return True
    return stopping and slot.exit_code in _STOP_DEATHS


def _start(slot: _Slot, zygote: Zygote | None, log: Any) -> Zygote | None:
    """Start the slot's worker; the zygote, or None once it is gone."""
    try:
        slot.start(zygote)
    except ZygoteGone as exc:
        log.warning("the zygote is gone; starting workers as new programs", error=str(exc))
        slot.start(None)
        return None
    return zygote


def _exits(
    zygote: Zygote | None, slots: list[_Slot], log: Any, *, stopping: bool = False
) -> tuple[dict[int, int], Zygote | None]:
    """Exits the zygote reported; once it is gone, those of its workers, adopted by this
    process (see `worker.zygote`). With them, the zygote, or None once it is gone (then
    reaped and said so at once, not at the next start of a worker)."""
    if zygote is not None:
        try:
            return zygote.exits(), zygote
        except ZygoteGone as exc:
            # A stop signalled to the whole group (systemd, a terminal) ends the zygote
            # too: expected then, and no worker will start again to need it.
            if not stopping:
                log.warning("the zygote is gone; starting workers as new programs", error=str(exc))
            zygote.close()
    orphans = [s.pid for s in slots if s.proc is None and s.pid and s.exit_code is None]
    return {pid: code for pid in orphans if (code := _orphan_exit(pid)) is not None}, None


def _orphan_exit(pid: int) -> int | None:
    """An adopted worker's exit code once it has ended (`LOST` if it was never adopted)."""
    try:
        ended, status = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:  # no subreaper here: only whether it still runs
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return LOST
        return None
    return os.waitstatus_to_exitcode(status) if ended else None


def _watch(slot: _Slot, exits: dict[int, int], *, stopping: bool, burst: bool, log: object) -> bool:
    """Note a worker's exit; True when it is due to start again (not while stopping, nor
    a burst worker that drained its queues)."""
    now = time.monotonic()
    if slot.exit_code is None:
        code = slot.ended(exits)
        if code is None:
            return False
        slot.exit_code = code
        if stopping or (burst and code >= 0) or code == USAGE:
            return False  # stopped, drained, failed in a burst (a restart would too), usage
        if now - slot.started >= _HEALTHY_AFTER:
            slot.backoff = _BACKOFF_FIRST
        slot.restart_at = now + slot.backoff
        slot.died += 1
        log.warning(  # type: ignore[attr-defined]
            "worker process exited; restarting it",
            pid=slot.pid,
            exit=_describe(code),
            restart_in=slot.backoff,
        )
        slot.backoff = min(slot.backoff * 2, _BACKOFF_MAX)
        return False
    return not stopping and slot.restart_at is not None and now >= slot.restart_at


def _describe(code: int) -> str:
    if code == LOST:
        return "ended (its exit code was lost with the zygote)"
    if code < 0:
        return f"killed by {signal.Signals(-code).name}"
    return f"exit code {code}"


def cpu_count() -> int:
    """One worker process per core available to this process."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1
