"""Worker processes under test: start them, sample their memory, reap them.

Peak RSS is the child's ``VmHWM`` from ``/proc``, read while it runs: it restarts at
``exec``, whereas ``ru_maxrss`` keeps the forked copy of this (larger) harness process.
"""

from __future__ import annotations

import asyncio
import compileall
import contextlib
import dataclasses
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
_live: set[Child] = set()  # so an interrupted run leaves no worker behind
#: the packages a measured worker imports from this checkout
PACKAGES = ("taskstore", "worker", "benchmarks")


def byte_compile() -> None:
    """Write the bytecode of the packages workers import, as an installed wheel has it.
    Where PYTHONDONTWRITEBYTECODE is set, a worker run from a checkout would otherwise
    compile some 80 modules from source at every start (about 0.08 s here): a cost of
    the checkout, which no installed deployment pays, in every start-up figure."""
    for package in PACKAGES:
        compileall.compile_dir(ROOT / package, quiet=2)


@dataclasses.dataclass(frozen=True)
class Exit:
    """How a child ended."""

    returncode: int
    seconds: float  # from spawn to exit
    peak_rss_mb: float
    cpu_seconds: float = 0.0  # user + system time of the process (and children it reaped)


class Child:
    """One spawned worker process; stdout is discarded, stderr kept in a log file."""

    def __init__(self, argv: Sequence[str], env: dict[str, str], log_path: Path) -> None:
        self.log_path = log_path
        self.started = time.time()
        with open(log_path, "w") as err:  # the child keeps its own copy of the descriptor
            self.proc = subprocess.Popen(
                [sys.executable, *argv],
                cwd=ROOT,
                env={**os.environ, "PYTHONPATH": str(ROOT), **env},
                stdout=subprocess.DEVNULL,
                stderr=err,
            )
        self.exit: Exit | None = None
        self.peak_mb = 0.0
        _live.add(self)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def rss_mb(self) -> float | None:
        """Current resident set size (and the peak so far), or None once it is gone."""
        try:
            status = Path(f"/proc/{self.pid}/status").read_text()
        except OSError:
            return None
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        if "VmRSS" not in fields:
            return None  # a zombie: exited, not yet reaped
        self.peak_mb = max(self.peak_mb, _mb(fields.get("VmHWM", "0 kB")))
        return _mb(fields["VmRSS"])

    def poll(self) -> Exit | None:
        """Reap the child if it has exited (non-blocking)."""
        if self.exit is None:
            self.rss_mb()  # the last look at VmHWM before the process is reaped
            pid, status, usage = os.wait4(self.pid, os.WNOHANG)
            if pid:
                self.proc.returncode = os.waitstatus_to_exitcode(status)
                cpu = usage.ru_utime + usage.ru_stime
                self.exit = Exit(
                    self.proc.returncode, time.time() - self.started, self.peak_mb, cpu
                )
                _live.discard(self)
        return self.exit

    async def wait(self, within: float, every: float = 0.02) -> Exit:
        """Wait for exit; past `within` seconds the child is killed and TimeoutError raised."""
        deadline = time.monotonic() + within
        while (done := self.poll()) is None:
            if time.monotonic() > deadline:
                self.kill()
                raise TimeoutError(f"worker still running after {within:.0f} s{self.tail()}")
            await asyncio.sleep(every)
        return done

    async def stop(self, within: float = 30.0) -> Exit:
        """SIGTERM (a graceful stop for both taskstore and pgqueuer), then wait."""
        if self.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return await self.wait(within)

    def kill(self) -> None:
        if self.poll() is None:
            self.proc.kill()
            os.waitpid(self.pid, 0)
            self.proc.returncode = -9
            _live.discard(self)

    def tail(self, lines: int = 5) -> str:
        """The last lines of the child's stderr, for error messages."""
        try:
            text = self.log_path.read_text(errors="replace").strip().splitlines()
        except OSError:
            return ""
        return "\n  " + "\n  ".join(text[-lines:]) if text else ""

    def check(self, what: str) -> Exit:
        """The exit of a child that was stopped or has ended; a failure raises."""
        if self.exit is None:
            raise RuntimeError(f"{what} is still running")
        if self.exit.returncode != 0:
            raise RuntimeError(f"{what} exited with {self.exit.returncode}{self.tail()}")
        return self.exit


@contextlib.asynccontextmanager
async def stopped_after(child: Child) -> AsyncIterator[Child]:
    """Use a long-running worker, then stop it gracefully (also when the body fails)."""
    try:
        yield child
    finally:
        await child.stop()


def kill_all() -> None:
    """Kill workers still running (the harness was interrupted or failed)."""
    for child in list(_live):
        child.kill()


def _mb(field: str) -> float:
    return int(field.split()[0]) / 1024  # "12345 kB"


def taskstore_worker(
    url: str, workdir: Path, *extra: str, concurrency: int, env: dict[str, str] | None = None
) -> Child:
    """A real ``taskstore-worker`` serving `benchmarks.apps`."""
    argv = ["-m", "worker.cli", "--app", "benchmarks.apps", "--concurrency", str(concurrency)]
    argv += ["--log-level", "WARNING", *extra]
    full_env = {"TASKSTORE_DATABASE_URL": url, **(env or {})}
    return Child(argv, full_env, workdir / f"taskstore-worker-{time.monotonic_ns()}.log")
