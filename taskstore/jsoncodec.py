"""The one JSON encoder taskstore uses for payloads, results and error documents."""

from __future__ import annotations

import json
from typing import Any

# One encoder object: json.dumps with options builds a new JSONEncoder on every call.
_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def dumps_json(value: Any) -> str:
    """Compact, strict JSON (no NaN), as stored in payload, result and error columns."""
    return _ENCODER.encode(value)
