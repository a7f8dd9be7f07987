"""Cron expressions: validity and next ticks (5 fields, or 6 with seconds last).

Shared by `@task(cron=...)`, which refuses an expression at registration, and the
scheduler, which computes ticks; croniter is imported on first use, because most workers
have no schedule and every worker start counts.
"""

from __future__ import annotations

import datetime as dt


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _croniter() -> type:
    from croniter import croniter

    return croniter


def is_valid(expression: str) -> bool:
    """5 fields, 6 (seconds last) or an alias such as ``@hourly`` (croniter's 7th field,
    a year, is not offered)."""
    if not expression.startswith("@") and len(expression.split()) not in (5, 6):
        return False
    return bool(_croniter().is_valid(expression))


def can_fire(expression: str) -> bool:
    """False for expressions that are well-formed but name no real time (February 31st)."""
    try:
        next_tick(expression, utcnow())
    except Exception:  # croniter gives up looking for a next date
        return False
    return True


def next_tick(expression: str, after: dt.datetime) -> dt.datetime:
    """The first tick strictly after `after`."""
    return _croniter()(expression, after).get_next(dt.datetime)


def last_tick(expression: str, at: dt.datetime) -> dt.datetime:
    """The last tick at or before `at`."""
    return _croniter()(expression, at + dt.timedelta(microseconds=1)).get_prev(dt.datetime)
