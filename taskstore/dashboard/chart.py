"""The throughput chart: completed and failed tasks per minute as inline SVG bars.

No chart library and no script: one stacked bar per minute (completed below, failed on
top), a `<title>` per bar for the hover text, and a few axis labels.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from taskstore.dashboard.markup import esc

WIDTH, HEIGHT = 720, 180
LEFT, RIGHT, BOTTOM, TOP = 36, 20, 22, 10  # room for the axis labels


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


def _bar(x: float, width: float, minute: dt.datetime, ok: int, bad: int, scale: float) -> str:
    base = HEIGHT - BOTTOM
    ok_h, bad_h = ok * scale, bad * scale
    label = f"{minute:%H:%M} UTC: {ok} completed, {bad} failed"
    parts = [f"<g><title>{esc(label)}</title>"]
    if ok:
        parts.append(
            f'<rect class="bar-ok" x="{x:.1f}" y="{base - ok_h:.1f}" '
            f'width="{width:.1f}" height="{ok_h:.1f}"/>'
        )
    if bad:
        parts.append(
            f'<rect class="bar-fail" x="{x:.1f}" y="{base - ok_h - bad_h:.1f}" '
            f'width="{width:.1f}" height="{bad_h:.1f}"/>'
        )
    parts.append("</g>")
    return "".join(parts)


def _axes(rows: list[tuple[dt.datetime, int, int]], peak: int, step: float) -> str:
    base = HEIGHT - BOTTOM
    out = [
        f'<line class="axis" x1="{LEFT}" y1="{base}" x2="{WIDTH - RIGHT}" y2="{base}"/>',
        f'<text class="tick" x="{LEFT - 4}" y="{TOP + 8}" text-anchor="end">{peak}</text>',
        f'<text class="tick" x="{LEFT - 4}" y="{base}" text-anchor="end">0</text>',
    ]
    for i, (minute, _, _) in enumerate(rows):
        if minute.minute % 15 == 0 or i == len(rows) - 1:
            x = LEFT + (i + 0.5) * step
            out.append(
                f'<text class="tick" x="{x:.1f}" y="{HEIGHT - 6}" '
                f'text-anchor="middle">{minute:%H:%M}</text>'
            )
    return "".join(out)


def throughput_svg(
    points: Sequence[dict[str, Any]], now: dt.datetime | None = None, minutes: int = 60
) -> str:
    """The chart for `store.throughput(minutes)` points, ending at `now`'s minute."""
    rows = slots(points, now or dt.datetime.now(dt.UTC), minutes)
    done, failed = sum(r[1] for r in rows), sum(r[2] for r in rows)
    peak = max((ok + bad for _, ok, bad in rows), default=0)
    step = (WIDTH - LEFT - RIGHT) / len(rows)
    scale = (HEIGHT - BOTTOM - TOP) / peak if peak else 0.0
    bars = "".join(
        _bar(LEFT + i * step + 1, step - 2, minute, ok, bad, scale)
        for i, (minute, ok, bad) in enumerate(rows)
        if ok or bad
    )
    summary = f"last {minutes} minutes: {done} completed, {failed} failed"
    return (
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-label="{esc(summary)}" xmlns="http://www.w3.org/2000/svg">'
        f"<title>{esc(summary)}</title>{_axes(rows, peak, step)}{bars}</svg>"
    )
