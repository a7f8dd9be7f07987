"""A producer process for the durability test: `python -m tests.helpers.producer URL N`.

Enqueues N tasks one at a time and prints each id, flushed, the moment `enqueue` returns,
so a test that kills it with SIGKILL knows exactly which enqueues were acknowledged.
"""

from __future__ import annotations

import asyncio
import sys

from taskstore import TaskStore


async def main(url: str, count: int) -> None:
    async with TaskStore.from_url(url) as store:
        for n in range(count):
            task_id = await store.enqueue("faulty.noop", {"n": n})
            sys.stdout.write(f"{task_id}\n")
            sys.stdout.flush()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2])))
