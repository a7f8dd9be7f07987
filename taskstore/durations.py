"""Durations as people type them: the one parser behind every duration option and setting.

``30`` (a bare number is seconds), ``30s``, ``5m``, ``1h``, ``7d``, ``2w`` and combinations
such as ``1h30m``. ``enqueue --delay``, ``purge --older-than``, ``status --interval``, the
worker's ``--lease-seconds`` / ``--shutdown-timeout`` and ``TASKSTORE_RETENTION`` all read
their values here, so a value means the same wherever it is typed.

Only the standard library is imported: the CLIs load this before deciding what else to load.
"""

from __future__ import annotations

import re

from taskstore.errors import InvalidInput

UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
EXAMPLES = "30, 30s, 5m, 1h or 7d; a bare number is seconds"
_PART = re.compile(r"(\d+(?:\.\d+)?)([smhdw]?)")


LONGEST = 100 * 365.25 * 86400  # seconds


def parse_duration(text: str) -> float:
    """Seconds in `text`; anything else raises `InvalidInput` ("invalid duration ...")."""
    compact = text.strip().lower().replace(" ", "")
    parts = _PART.findall(compact)
    if not compact or "".join(n + u for n, u in parts) != compact:
        raise InvalidInput(f"invalid duration {text!r} (examples: {EXAMPLES})")
    seconds = sum(float(n) * UNITS[u or "s"] for n, u in parts)
    if seconds > LONGEST:  # past it, a database cannot add it to a date
        raise InvalidInput(f"duration {text!r} is longer than 100 years")
    return seconds


def format_duration(seconds: float) -> str:
    """The shortest exact spelling in the parser's own units: 90 -> ``1m30s``."""
    if seconds != int(seconds) or seconds <= 0:
        return f"{seconds:g}s"
    left, out = int(seconds), []
    for unit in ("d", "h", "m", "s"):
        count, left = divmod(left, UNITS[unit])
        if count:
            out.append(f"{count}{unit}")
    return "".join(out)
