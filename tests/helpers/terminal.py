"""Run a command on a terminal of its own (a pty), then hang that terminal up.

``python -m tests.helpers.terminal CMD...`` starts CMD as the session leader of a new
pty and reads (and drops) what CMD writes, so CMD never blocks on a full terminal. A line
on this program's stdin, or its end, closes the terminal as a closed window or a dropped
SSH session does: the kernel sends SIGHUP, and writes to it fail with EIO. Exits with
CMD's exit code (128 + the signal if a signal ended it).
"""

from __future__ import annotations

import os
import pty
import select
import subprocess
import sys
from pathlib import Path


def main(argv: list[str]) -> int:
    pid, terminal = pty.fork()
    if pid == 0:
        os.execvp(argv[0], argv)
    while True:
        ready = select.select([terminal, sys.stdin], [], [])[0]
        if sys.stdin in ready:
            sys.stdin.readline()
            break
        try:
            os.read(terminal, 65536)
        except OSError:  # CMD ended and closed its side first
            break
    os.close(terminal)
    code = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
    return code if code >= 0 else 128 - code


def start_on_terminal(argv: list[str], cwd: Path, env: dict[str, str]) -> subprocess.Popen:
    """`argv` on a terminal of its own; `.communicate("\\n")` hangs the terminal up."""
    return subprocess.Popen(
        [sys.executable, "-m", "tests.helpers.terminal", *argv],
        cwd=cwd,
        env=env,
        stdin=subprocess.PIPE,
        text=True,
    )


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
