"""A claimer process for the concurrency tests: claims batches until the queue is empty,
completes them, and prints every id it was handed (one per line)."""

from __future__ import annotations

import asyncio
import os
import sys

from taskstore import TaskStore


async def main(url: str, batch: int) -> None:
    worker = f"proc-{os.getpid()}"
    seen: list[int] = []
    async with TaskStore.from_url(url) as store:
        empty_rounds = 0
        while empty_rounds < 3:
            async with store.transaction() as conn:
                got = await store.tasks.claim(
                    conn, worker_id=worker, queue="default", limit=batch, lease_seconds=60
                )
            if not got:
                empty_rounds += 1
                await asyncio.sleep(0.05)
                continue
            empty_rounds = 0
            async with store.transaction() as conn:
                done = [(t.id, t.fence, None) for t in got]
                await store.tasks.complete_many(conn, worker_id=worker, done=done)
            seen.extend(t.id for t in got)
    sys.stdout.write("".join(f"{i}\n" for i in seen))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2])))
