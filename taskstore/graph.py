"""The dependency graph of one enqueue call: batch keys resolved, cycles refused.

Tasks of one `enqueue_many` batch may depend on each other by ``key`` (so a fan-out and
its fan-in go in one call) and on tasks enqueued before by id. Ids always name older
tasks, so only edges within the batch can close a cycle; this finds them before anything
is written.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from taskstore.errors import InvalidInput
from taskstore.records import NewTask


@dataclasses.dataclass(frozen=True, slots=True)
class Graph:
    """A batch's edges: to other tasks of the batch (by position) and to existing ids."""

    inner: list[tuple[int, int]]  # (dependent position, dependency position)
    outer: list[tuple[int, int]]  # (dependent position, dependency task id)

    @property
    def external_ids(self) -> list[int]:
        return sorted({task_id for _, task_id in self.outer})


def resolve(batch: Sequence[NewTask], *, keys_allowed: bool = True) -> Graph | None:
    """The batch's dependency graph (None: no task has dependencies)."""
    positions: dict[str, int] = {}
    for i, task in enumerate(batch):  # a repeated key is refused, named or not
        if task.key is not None:
            if task.key in positions:
                raise InvalidInput(f"two tasks of the batch have the key {task.key!r}")
            positions[task.key] = i
    if not any(t.depends_on for t in batch):
        return None
    inner, outer = [], []
    for i, task in enumerate(batch):
        for ref in task.depends_on:
            if isinstance(ref, int):
                outer.append((i, ref))
            elif not keys_allowed:
                raise InvalidInput(
                    f"depends_on names the key {ref!r}: keys name tasks of one enqueue_many batch"
                )
            elif ref not in positions:
                raise InvalidInput(f"depends_on names no task of the batch with the key {ref!r}")
            elif batch[positions[ref]].dedup_key is not None:
                raise InvalidInput(
                    f"the task with the key {ref!r} has a dedup_key: none may depend on it"
                )
            else:
                inner.append((i, positions[ref]))
    _refuse_cycles(batch, inner)
    return Graph(inner, outer)


def _refuse_cycles(batch: Sequence[NewTask], inner: list[tuple[int, int]]) -> None:
    """Kahn's algorithm over the batch's own edges: what is left over lies on a cycle."""
    needs: dict[int, set[int]] = {}
    for task, dep in inner:
        needs.setdefault(task, set()).add(dep)
    dependents: dict[int, list[int]] = {}
    for task, deps in needs.items():
        for dep in deps:
            dependents.setdefault(dep, []).append(task)
    free = [i for i in range(len(batch)) if not needs.get(i)]
    done = 0
    while free:
        dep = free.pop()
        done += 1
        for task in dependents.get(dep, ()):
            needs[task].discard(dep)
            if not needs[task]:
                free.append(task)
    if done < len(batch):
        stuck = sorted(i for i, deps in needs.items() if deps)
        names = ", ".join(batch[i].key or f"#{i}" for i in stuck[:5])
        raise InvalidInput(f"depends_on makes a cycle (tasks {names}): they would wait forever")
