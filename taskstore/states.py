"""The task state machine: statuses and the one table of legal transitions.

Every write that changes a task's status takes its allowed source statuses from
`TRANSITIONS`, so an illegal transition cannot be expressed by accident: the UPDATE simply
matches no row and the repository raises `IllegalTransition`.
"""

from __future__ import annotations

import enum


class TaskStatus(enum.StrEnum):
    """Statuses, stored as short strings."""

    CREATED = "created"
    ASSIGNED = "assigned"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    NOT_FINISHED = "not_finished"
    CANCELLED = "cancelled"
    WAITING = "waiting"  # for its dependencies to complete


class Event(enum.StrEnum):
    """What happens to a task; each event has one row in `TRANSITIONS`."""

    CLAIM_START = "claim_start"  # claim and start in one statement: -> running
    COMPLETE = "complete"
    RETRY = "retry"  # failed attempt with attempts left: -> created, run_at pushed
    FAIL = "fail"
    RELEASE = "release"  # claimed but never run (stopping, no handler): -> created, uncharged
    SNOOZE = "snooze"  # the handler asked to run later: -> created, uncharged
    INTERRUPT = "interrupt"  # lease expired or cut off at shutdown: -> not_finished
    CANCEL = "cancel"
    REQUEUE = "requeue"  # operator retry of a finished task: -> created
    READY = "ready"  # its last dependency completed: waiting -> created
    WAIT_AGAIN = "wait_again"  # operator retry of its failed dependency: cancelled -> waiting


S = TaskStatus

#: event -> (statuses it may start from, status it leads to)
TRANSITIONS: dict[Event, tuple[frozenset[TaskStatus], TaskStatus]] = {
    Event.CLAIM_START: (frozenset({S.CREATED, S.NOT_FINISHED}), S.RUNNING),
    Event.COMPLETE: (frozenset({S.RUNNING}), S.COMPLETED),
    Event.RETRY: (frozenset({S.RUNNING}), S.CREATED),
    Event.FAIL: (frozenset({S.RUNNING}), S.FAILED),
    Event.RELEASE: (frozenset({S.ASSIGNED, S.RUNNING}), S.CREATED),
    Event.SNOOZE: (frozenset({S.RUNNING}), S.CREATED),
    Event.INTERRUPT: (frozenset({S.ASSIGNED, S.RUNNING}), S.NOT_FINISHED),
    # A dependency that failed or was cancelled cancels its waiting dependents too.
    Event.CANCEL: (
        frozenset({S.CREATED, S.ASSIGNED, S.RUNNING, S.NOT_FINISHED, S.WAITING}),
        S.CANCELLED,
    ),
    Event.REQUEUE: (frozenset({S.FAILED, S.CANCELLED}), S.CREATED),
    Event.READY: (frozenset({S.WAITING}), S.CREATED),
    Event.WAIT_AGAIN: (frozenset({S.CANCELLED}), S.WAITING),
}

#: statuses a worker may claim
CLAIMABLE: frozenset[TaskStatus] = TRANSITIONS[Event.CLAIM_START][0]
#: statuses in which a task is "not finished" (dedup keys stay taken)
ACTIVE: frozenset[TaskStatus] = frozenset({S.CREATED, S.ASSIGNED, S.RUNNING, S.NOT_FINISHED})
#: statuses a worker holds under a lease
LEASED: frozenset[TaskStatus] = frozenset({S.ASSIGNED, S.RUNNING})
FINISHED: frozenset[TaskStatus] = frozenset({S.COMPLETED, S.FAILED, S.CANCELLED})


def sources(event: Event) -> frozenset[TaskStatus]:
    """Statuses from which `event` is legal."""
    return TRANSITIONS[event][0]


def target(event: Event) -> TaskStatus:
    """Status `event` leads to."""
    return TRANSITIONS[event][1]


def ordered(statuses: frozenset[TaskStatus]) -> list[str]:
    """A stable order, so statements built from a set compile to the same SQL every time."""
    return sorted(s.value for s in statuses)
