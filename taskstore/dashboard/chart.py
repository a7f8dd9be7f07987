"""The throughput chart: completed and failed tasks per minute, laid out for inline SVG.

No chart library and no script: one stacked bar per minute (completed below, failed on
top), a hover title per bar, and a few axis labels. This module only computes the
geometry; ``templates/_chart.html`` draws it.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Sequence
from typing import Any

WIDTH, HEIGHT = 720, 180
LEFT, RIGHT, BOTTOM, TOP = 36, 20, 22, 10  # room for the axis labels
BASE = HEIGHT - BOTTOM
TICK_GAP = 5  # minutes between two axis labels at least (an "HH:MM" is about 4 bars wide)


@dataclasses.dataclass(frozen=True, slots=True)
class Bar:
    """One minute's stacked bar; a height of 0 draws no rectangle."""

    x: float
    width: float
    ok_height: float
    fail_height: float
    label: str


@dataclasses.dataclass(frozen=True, slots=True)
class Tick:
    x: float
    text: str


@dataclasses.dataclass(frozen=True, slots=True)
class Chart:
    summary: str
    peak: int
    bars: list[Bar]
    ticks: list[Tick]
    width: int = WIDTH
    height: int = HEIGHT
    left: int = LEFT
    right: int = WIDTH - RIGHT
    top: int = TOP
    base: int = BASE


def minute_of(value: dt.datetime) -> dt.datetime:
    """The UTC minute a timestamp falls in (naive values are taken as UTC)."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return value.astimezone(dt.UTC).replace(second=0, microsecond=0)


def slots(
    points: Sequence[dict[str, Any]], now: dt.datetime, minutes: int
) -> list[tuple[dt.datetime, int, int]]:
    """(minute, completed, failed) for each of the last `minutes` minutes, oldest first."""
    counts = {minute_of(p["minute"]): (p["completed"], p["failed"]) for p in points}
    end = max([minute_of(now), *counts])
    first = end - dt.timedelta(minutes=minutes - 1)
    out = []
    for i in range(minutes):
        minute = first + dt.timedelta(minutes=i)
        completed, failed = counts.get(minute, (0, 0))
        out.append((minute, completed, failed))
    return out


def throughput_chart(
    points: Sequence[dict[str, Any]], now: dt.datetime | None = None, minutes: int = 60
) -> Chart:
    """The chart for `store.throughput(minutes)` points, ending at `now`'s minute."""
    rows = slots(points, now or dt.datetime.now(dt.UTC), minutes)
    done, failed = sum(r[1] for r in rows), sum(r[2] for r in rows)
    peak = max((ok + bad for _, ok, bad in rows), default=0)
    step = (WIDTH - LEFT - RIGHT) / len(rows)
    scale = (BASE - TOP) / peak if peak else 0.0
    bars = [
        Bar(
            x=round(LEFT + i * step + 1, 1),
            width=round(step - 2, 1),
            ok_height=round(ok * scale, 1),
            fail_height=round(bad * scale, 1),
            label=f"{minute:%H:%M} UTC: {ok} completed, {bad} failed",
        )
        for i, (minute, ok, bad) in enumerate(rows)
        if ok or bad
    ]
    last = len(rows) - 1
    ticks = [
        Tick(round(LEFT + (i + 0.5) * step, 1), f"{minute:%H:%M}")
        for i, (minute, _, _) in enumerate(rows)
        # every quarter hour, and the last minute; a quarter hour that close to the
        # last label would print over it
        if i == last or (minute.minute % 15 == 0 and last - i >= TICK_GAP)
    ]
    summary = f"last {minutes} minutes: {done} completed, {failed} failed"
    return Chart(summary=summary, peak=peak, bars=bars, ticks=ticks)
