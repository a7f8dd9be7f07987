"""A blocking producer that never closes its `SyncTaskStore` still exits, and what it
enqueued is in the database afterwards. Each script runs as a real process; the timeout
only catches a hang (a hanging process would wait forever)."""

from __future__ import annotations

import gc
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from taskstore import SchemaOutOfDate, TaskStatus
from taskstore.sync import SyncTaskStore

ROOT = Path(__file__).resolve().parents[2]
HANG = 120  # seconds: far beyond a normal run, only there so a hang fails the test


def run_script(tmp_path: Path, body: str, url: str) -> subprocess.CompletedProcess[str]:
    script = tmp_path / "producer.py"
    script.write_text(textwrap.dedent(body))
    return subprocess.run(
        [sys.executable, str(script), url],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=HANG,
    )


def printed_ids(result: subprocess.CompletedProcess[str]) -> list[int]:
    assert result.returncode == 0, result.stderr
    return [int(word) for word in result.stdout.split()]


def sqlite_wal(db_url: str) -> Path | None:
    url = make_url(db_url)
    return Path(url.database + "-wal") if url.get_backend_name() == "sqlite" else None


def test_a_script_that_never_closes_its_sync_store_exits_with_the_task_committed(
    db_url: str, tmp_path: Path
) -> None:
    result = run_script(
        tmp_path,
        """
        import sys
        from taskstore.sync import SyncTaskStore

        tasks = SyncTaskStore(sys.argv[1])
        print(tasks.enqueue("pkg.fn", {"n": 1}))
        """,
        db_url,
    )
    [task_id] = printed_ids(result)
    wal = sqlite_wal(db_url)
    assert wal is None or not wal.exists()  # the last connection was closed at exit
    with SyncTaskStore(db_url) as tasks:
        assert tasks.get(task_id).payload == {"n": 1}


def test_a_script_that_forgets_close_after_several_operations_exits_with_all_of_them(
    db_url: str, tmp_path: Path
) -> None:
    result = run_script(
        tmp_path,
        """
        import sys
        from taskstore.sync import SyncTaskStore

        tasks = SyncTaskStore(sys.argv[1])
        first = tasks.enqueue("pkg.fn", {"n": 0}, queue="media", dedup_key="k")
        assert tasks.enqueue("pkg.fn", {"n": 9}, dedup_key="k") == first
        rest = tasks.enqueue_many([{"name": "pkg.fn", "payload": {"n": n}} for n in (1, 2)])
        tasks.cancel(rest[0])
        tasks.retry(rest[0])
        assert tasks.get(first).queue == "media" and tasks.stats()
        print(first, *rest)
        """,
        db_url,
    )
    ids = printed_ids(result)
    with SyncTaskStore(db_url) as tasks:
        assert [tasks.get(i).payload["n"] for i in ids] == [0, 1, 2]
        assert tasks.get(ids[1]).status is TaskStatus.CREATED


def test_a_sync_store_shared_by_two_threads_and_never_closed_lets_the_script_exit(
    db_url: str, tmp_path: Path
) -> None:
    result = run_script(
        tmp_path,
        """
        import sys, threading
        from taskstore.sync import SyncTaskStore

        tasks = SyncTaskStore(sys.argv[1])
        ids = []

        def produce(offset):
            for n in range(10):
                ids.append(tasks.enqueue("pkg.fn", {"n": offset + n}))

        threads = [threading.Thread(target=produce, args=(k * 100,)) for k in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        print(*ids)
        """,
        db_url,
    )
    ids = printed_ids(result)
    assert len(set(ids)) == 20
    with SyncTaskStore(db_url) as tasks:
        payloads = sorted(tasks.get(i).payload["n"] for i in ids)
    assert payloads == [*range(10), *range(100, 110)]


def test_a_script_using_the_with_form_exits_with_the_task_committed(
    db_url: str, tmp_path: Path
) -> None:
    result = run_script(
        tmp_path,
        """
        import sys
        from taskstore.sync import SyncTaskStore

        with SyncTaskStore(sys.argv[1]) as tasks:
            print(tasks.enqueue("pkg.fn", {"n": 1}))
        """,
        db_url,
    )
    [task_id] = printed_ids(result)
    with SyncTaskStore(db_url) as tasks:
        assert tasks.get(task_id) is not None


def test_a_sync_store_that_cannot_open_fails_with_one_line_and_the_script_exits(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path / 'never-migrated.db'}"
    result = run_script(
        tmp_path,
        """
        import sys
        from taskstore import TaskStoreError
        from taskstore.sync import SyncTaskStore

        try:
            SyncTaskStore(sys.argv[1])
        except TaskStoreError as exc:
            sys.exit(f"error: {exc}")
        """,
        url,
    )
    assert result.returncode == 1
    assert result.stderr.strip().startswith("error: no database file at")
    with pytest.raises(SchemaOutOfDate):
        SyncTaskStore(url)


def loop_threads() -> int:
    return sum(1 for t in threading.enumerate() if t.name == "taskstore-sync")


def test_a_sync_store_dropped_without_close_stops_its_loop_thread(db_url: str) -> None:
    before = loop_threads()

    def produce_once() -> int:
        return SyncTaskStore(db_url).enqueue("pkg.fn", {"n": 1})

    task_id = produce_once()
    gc.collect()
    assert loop_threads() == before
    with SyncTaskStore(db_url) as tasks:
        assert tasks.get(task_id) is not None


def test_a_closed_sync_store_refuses_further_calls_and_closes_once(db_url: str) -> None:
    tasks = SyncTaskStore(db_url)
    tasks.close()
    tasks.close()
    with pytest.raises(RuntimeError, match="closed"):
        tasks.enqueue("pkg.fn")


def test_a_sync_store_made_before_a_fork_works_in_the_children_and_they_exit(
    db_url: str, tmp_path: Path
) -> None:
    """gunicorn --preload, multiprocessing: the store is made at import, in the parent;
    the loop's thread does not come along into a forked child."""
    result = run_script(
        tmp_path,
        """
        import os, sys
        from taskstore.sync import SyncTaskStore

        tasks = SyncTaskStore(sys.argv[1])  # as a module-level store of a preloaded app
        print(tasks.enqueue("pkg.fn", {"n": 0}), flush=True)
        user = os.fork()
        if user == 0:
            print(tasks.enqueue("pkg.fn", {"n": 1}), flush=True)
            sys.exit(0)
        idle = os.fork()
        if idle == 0:
            sys.exit(0)  # never uses the store: exits at once all the same
        for child in (user, idle):
            assert os.waitpid(child, 0)[1] == 0
        print(tasks.enqueue("pkg.fn", {"n": 2}), flush=True)
        """,
        db_url,
    )
    ids = printed_ids(result)
    assert len(ids) == 3 == len(set(ids))
    with SyncTaskStore(db_url) as tasks:
        assert sorted(tasks.get(i).payload["n"] for i in ids) == [0, 1, 2]
