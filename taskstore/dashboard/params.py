"""Query-string parsing for the dashboard: ids, paging and the task list filters.

Bad input raises `InvalidInput` with a one-line message; the app answers it with 400.
Status, queue and name are checked by `TaskStore.list` itself, so the rules live in one
place.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode

from taskstore.errors import InvalidInput

MAX_ID = 2**63 - 1  # ids are BIGINT
DEFAULT_LIMIT = 50
MAX_LIMIT = 500


def parse_int(text: str, what: str, low: int, high: int) -> int:
    """An integer from `low` to `high`, or `InvalidInput` naming `what`."""
    try:
        value = int(text.strip(), 10)
    except ValueError:
        raise InvalidInput(f"{what} must be an integer, got {text[:40]!r}") from None
    if not low <= value <= high:
        raise InvalidInput(f"{what} must be an integer from {low} to {high}, got {value}")
    return value


def parse_task_id(text: str) -> int:
    return parse_int(text, "task id", 1, MAX_ID)


@dataclasses.dataclass(frozen=True, slots=True)
class TaskFilter:
    """What the task list shows: filters, page size and the page's upper id bound."""

    status: str | None = None
    queue: str | None = None
    name: str | None = None
    before_id: int | None = None
    limit: int = DEFAULT_LIMIT

    @classmethod
    def parse(cls, params: Mapping[str, str]) -> TaskFilter:
        """From a query string; empty values (a form's "any") mean no filter."""

        def text(key: str) -> str | None:
            value = params.get(key, "").strip()
            return value or None

        before = text("before_id")
        limit = text("limit")
        return cls(
            status=text("status"),
            queue=text("queue"),
            name=text("name"),
            before_id=None if before is None else parse_int(before, "before_id", 1, MAX_ID),
            limit=DEFAULT_LIMIT if limit is None else parse_int(limit, "limit", 1, MAX_LIMIT),
        )

    def store_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for `TaskStore.list`, one row more to learn if a page follows."""
        fields = dataclasses.asdict(self)
        return {**fields, "limit": self.limit + 1}

    def query(self, **changes: Any) -> str:
        """This filter as a query string, with `changes` applied; empty values left out."""
        fields = {**dataclasses.asdict(self), **changes}
        if fields["limit"] == DEFAULT_LIMIT:
            fields["limit"] = None
        return urlencode({k: v for k, v in fields.items() if v is not None})
