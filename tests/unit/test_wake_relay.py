"""The supervisor's wake-up relay, without a database: every worker's pipe gets every
payload, a dead or full pipe never blocks the others, and a worker sees its end."""

from __future__ import annotations

import os

import anyio

from worker.wakeups import WakeRelay, read_relayed


async def test_each_worker_reads_every_relayed_payload_then_the_end_of_its_pipe() -> None:
    relay = WakeRelay(None)
    first, second = relay.pipe_for(0), relay.pipe_for(1)
    relay._relay("emails,media")
    relay._relay("*")
    seen: list[str] = []
    with anyio.fail_after(5):
        async with anyio.create_task_group() as group:
            group.start_soon(read_relayed, first, seen.append)
            await anyio.sleep(0.1)
            relay.pipe_for(0)  # the worker of slot 0 restarts: its old pipe is closed
    assert seen == ["*", "emails,media", "*"]  # its own start, then the relayed lines
    assert os.read(second, 100) == b"emails,media\n*\n"


async def test_a_dead_or_full_pipe_never_blocks_the_relay() -> None:
    relay = WakeRelay(None)
    dead, full, live = relay.pipe_for(0), relay.pipe_for(1), relay.pipe_for(2)
    os.close(dead)
    for _ in range(20_000):  # far past a pipe's buffer: writes to `full` start failing
        relay._relay("default")
    relay._relay("last")
    os.set_blocking(live, False)
    received = b""
    while True:
        try:
            received += os.read(live, 1 << 20)
        except BlockingIOError:
            break
    assert received.startswith(b"default\n") and received.count(b"\n") < 20_001
    os.close(full)
    os.close(live)
