"""Zygote: worker processes forked from one that has already imported the worker.

A `taskstore-worker` process spends about 0.4 s of CPU importing SQLAlchemy, the store and
the worker before it claims anything; a supervisor of N processes paid that N times, and
again at every restart. Now the supervisor imports them once (it needs the store for its
LISTEN anyway) and, before it starts any thread, forks the zygote: a process that does
nothing but fork a worker for each request, restarts included. Each worker starts with the
imports done and shares their memory pages with its siblings until it writes to them.

Requests and reports are JSON lines over a socket pair: ``{"argv": [...], "fd": bool}``
one way, ``{"spawned": pid}`` and ``{"exited": pid, "code": c}`` the other; a worker's
wake pipe travels beside its request (SCM_RIGHTS). The zygote reaps its workers, reports
each exit, and ends when the supervisor closes the socket, once its workers have ended.
"""

from __future__ import annotations

import collections
import contextlib
import ctypes
import gc
import importlib
import json
import os
import select
import signal
import socket
import sys
import traceback
from collections.abc import Callable
from typing import Any

from taskstore import collector

#: what every worker imports before it claims anything
PRELOAD = (
    "worker.runner",
    "taskstore.store",
    "taskstore.consumer",
    "sqlalchemy.dialects.postgresql.asyncpg",
    "sqlalchemy.dialects.sqlite.aiosqlite",
)


_PR_SET_CHILD_SUBREAPER = 36


class ZygoteGone(Exception):
    """The zygote is not there any more: start workers the slow way."""


class Zygote:
    """The supervisor's end of the zygote."""

    def __init__(self, pid: int, sock: socket.socket) -> None:
        self.pid = pid
        self._sock = sock
        self._buffer = b""
        self._exits: dict[int, int] = {}

    @classmethod
    def start(cls, run_worker: Callable[[list[str]], None]) -> Zygote:
        """Import what workers need, here, then fork the zygote (call before any thread);
        a worker it forks calls ``run_worker(options)``, which exits with its code."""
        for module in PRELOAD:
            with contextlib.suppress(ImportError):  # a driver not installed: imported late
                importlib.import_module(module)
        _adopt_orphans()
        ours, theirs = socket.socketpair()
        sys.stdout.flush()
        sys.stderr.flush()
        # What is imported by now stays out of every collection from here on, so a forked
        # worker's collector does not touch (and copy) those pages.
        gc.freeze()
        pid = os.fork()
        if pid == 0:  # the zygote
            ours.close()
            code = 0
            try:
                _serve(theirs, run_worker)
            except BaseException:
                traceback.print_exc()
                code = 1
            os._exit(code)
        theirs.close()
        return cls(pid, ours)

    def spawn(self, argv: list[str], wake_fd: int | None) -> int:
        """Fork a worker with these options (and wake pipe); its pid."""
        line = (json.dumps({"argv": argv, "fd": wake_fd is not None}) + "\n").encode()
        try:
            socket.send_fds(self._sock, [line], [] if wake_fd is None else [wake_fd])
            while True:
                message = self._message(block=True)
                if "spawned" in message:
                    return int(message["spawned"])
                self._exits[int(message["exited"])] = int(message["code"])
        except OSError as exc:
            raise ZygoteGone(str(exc)) from exc

    def wait(self, seconds: float) -> None:
        """Until the zygote reports something, or `seconds` pass."""
        if b"\n" not in self._buffer:
            select.select([self._sock], [], [], seconds)

    def exits(self) -> dict[int, int]:
        """Exit codes (pid -> code, negative: killed by that signal) reported since the
        last call; `ZygoteGone` once the zygote has ended."""
        while (message := self._message(block=False)) is not None:
            self._exits[int(message["exited"])] = int(message["code"])
        exits, self._exits = self._exits, {}
        return exits

    def _message(self, *, block: bool) -> dict[str, Any] | None:
        while b"\n" not in self._buffer:
            if not block and not select.select([self._sock], [], [], 0)[0]:
                return None
            data = self._sock.recv(65536)
            if not data:
                raise ZygoteGone("the zygote ended")
            self._buffer += data
        line, self._buffer = self._buffer.split(b"\n", 1)
        return json.loads(line)

    def close(self) -> None:
        """Let the zygote end (after its workers) and reap it."""
        self._sock.close()
        with contextlib.suppress(ChildProcessError):
            os.waitpid(self.pid, 0)


def _adopt_orphans() -> None:
    """Should the zygote die, its workers become the supervisor's children (Linux's child
    subreaper), so it still learns how each one ends."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)


def _serve(sock: socket.socket, run_worker: Callable[[list[str]], None]) -> None:
    """The zygote: fork a worker per request, report every exit, until end of file."""
    collector.resume()  # its start-up was the supervisor's (each worker pauses its own)
    # A Ctrl-C, or the terminal's hangup, is the supervisor's to pass on.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    ended_r, ended_w = os.pipe()  # a byte per SIGCHLD: an exit is reported at once
    os.set_blocking(ended_w, False)
    signal.set_wakeup_fd(ended_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    children: set[int] = set()
    buffer, fds = b"", collections.deque[int]()
    while True:
        ready = select.select([sock, ended_r], [], [], 1.0)[0]
        if ended_r in ready:
            os.read(ended_r, 4096)
        if sock in ready:
            data, received, _, _ = socket.recv_fds(sock, 65536, 16)
            if not data:
                break
            buffer += data
            fds.extend(received)
            while b"\n" in buffer:
                line, buffer = buffer.split(b"\n", 1)
                request = json.loads(line)
                wake_fd = fds.popleft() if request["fd"] else None
                pid = os.fork()
                if pid == 0:
                    _become_worker(sock, run_worker, request["argv"], wake_fd)
                if wake_fd is not None:
                    os.close(wake_fd)  # the worker has its copy
                children.add(pid)
                _send(sock, {"spawned": pid})
        for pid, code in _reaped(children):
            _send(sock, {"exited": pid, "code": code})
    for pid in children:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, 0)  # reaped: their CPU time counts in the supervisor's


def _reaped(children: set[int]) -> list[tuple[int, int]]:
    done = []
    while children:
        pid, status = os.waitpid(-1, os.WNOHANG)
        if pid == 0:
            break
        children.discard(pid)
        done.append((pid, os.waitstatus_to_exitcode(status)))
    return done


def _send(sock: socket.socket, message: dict[str, int]) -> None:
    sock.sendall((json.dumps(message) + "\n").encode())


def _become_worker(
    sock: socket.socket,
    run_worker: Callable[[list[str]], None],
    argv: list[str],
    wake_fd: int | None,
) -> None:
    """In the forked child: run the worker with `argv`; never returns."""
    sock.close()
    os.setsid()  # a session of its own, as the supervisor's workers always had
    signal.set_wakeup_fd(-1)
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGHUP, signal.SIG_DFL)
    if wake_fd is not None:
        argv = [*argv, "--wake-fd", str(wake_fd)]
    code = 0
    try:
        run_worker(argv)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except BaseException:
        traceback.print_exc()
        code = 1
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
    os._exit(code)
