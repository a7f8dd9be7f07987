"""The one JSON codec taskstore uses for payloads, results and error documents."""

from __future__ import annotations

import json
from typing import Any

# One encoder object: json.dumps with options builds a new JSONEncoder on every call.
_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def dumps_json(value: Any) -> str:
    """Compact, strict JSON (no NaN), as stored in payload, result and error columns."""
    return _ENCODER.encode(value)


_DECODER = json.JSONDecoder()


def loads_json(text: str) -> Any:
    """A JSON column's text as a value. The empty object, the payload of many tasks,
    costs a comparison instead of a parse: a worker decodes every payload it claims."""
    if text == "{}":
        return {}
    return _DECODER.decode(text)
