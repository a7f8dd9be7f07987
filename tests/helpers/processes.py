"""Start and watch real `taskstore-worker` processes for the process-level tests."""

from __future__ import annotations

import collections
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listened on a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_worker(
    url: str,
    *args: str,
    exec_log: Path | None = None,
    env: dict[str, str] | None = None,
    app: str = "tests.apps.pipeline",
) -> subprocess.Popen:
    """A `taskstore-worker` serving `app`; its stderr goes to a file."""
    full_env = {**os.environ, "TASKSTORE_DATABASE_URL": url, **(env or {})}
    if exec_log is not None:
        full_env["TEST_EXEC_LOG"] = str(exec_log)
    err_path = exec_log.with_suffix(f".{time.monotonic_ns()}.err") if exec_log else os.devnull
    with open(err_path, "w") as err:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(
            [sys.executable, "-m", "worker.cli", "--app", app, *args],
            cwd=ROOT,
            env=full_env,
            stdout=subprocess.DEVNULL,
            stderr=err,
            text=True,
        )


def stderr_of(exec_log: Path) -> str:
    return "".join(
        p.read_text() for p in sorted(exec_log.parent.glob(exec_log.name[:-4] + ".*.err"))
    )


def executions(exec_log: Path) -> collections.Counter[int]:
    """How many times each task id was executed, from the shared execution log."""
    if not exec_log.exists():
        return collections.Counter()
    return collections.Counter(int(line.split()[0]) for line in exec_log.read_text().splitlines())


def stop(proc: subprocess.Popen, timeout: float = 60) -> int:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    return proc.wait(timeout=timeout)
