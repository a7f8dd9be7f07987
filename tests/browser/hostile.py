"""A task whose every free-text field holds markup: what the XSS tests render.

Shared by the served-HTML checks (tests/integration/test_dashboard.py) and the real
browser (test_dashboard_browser.py), so both look at the same hostile row.
"""

from __future__ import annotations

from sqlalchemy import update

from taskstore import TaskStore
from taskstore.models import TaskEntity

SCRIPT = "<script>alert(1)</script>"
ATTRIBUTE = '"><img src=x onerror=alert(1)>'
MESSAGE = f"{SCRIPT} {ATTRIBUTE}"
ERROR_LINE = f"ValueError: {MESSAGE}"
PAYLOAD = {"html": SCRIPT, "attr": ATTRIBUTE, ATTRIBUTE: SCRIPT}
RESULT = {"html": SCRIPT, "attr": ATTRIBUTE}
ERROR = {
    "type": "ValueError",
    "message": f"{MESSAGE}\nsecond line {SCRIPT}",
    "traceback": f"Traceback (most recent call last):\nValueError: {SCRIPT} {ATTRIBUTE}\n",
}


async def hostile_task(store: TaskStore, queue: str = "hostile") -> int:
    """A failed task with markup in its payload, result, error, dedup key and worker id."""
    task_id = await store.enqueue(
        "app.hostile", PAYLOAD, queue=queue, max_attempts=1, dedup_key=ATTRIBUTE
    )
    async with store.transaction() as conn:
        [task] = await store.tasks.claim(
            conn, worker_id=ATTRIBUTE, queue=queue, limit=1, lease_seconds=30
        )
    async with store.transaction() as conn:
        await store.tasks.fail(
            conn,
            task_id=task.id,
            worker_id=ATTRIBUTE,
            fence=task.fence,
            error=ERROR,
            retry_in=None,
        )
        # A failed attempt stores no result; a handler may have left a partial one.
        stmt = update(TaskEntity).where(TaskEntity.id == task_id).values(result=RESULT)
        await conn.execute(stmt)
    return task_id
