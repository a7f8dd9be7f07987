"""Query-string parsing for the dashboard: ids, paging and the task list filters.

Bad input raises `InvalidInput` with a one-line message; the app answers it with 400.
Queue and task names are checked with the store's own rules (`taskstore.validation`), so
the rules live in one place.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode

from taskstore import validation
from taskstore.errors import InvalidInput
from taskstore.states import TaskStatus

MAX_ID = 2**63 - 1  # ids are BIGINT
DEFAULT_LIMIT = 50
MAX_LIMIT = 500


_FLAGS = {"1": True, "true": True, "yes": True, "on": True}
_FLAGS |= {"": False, "0": False, "false": False, "no": False, "off": False}


def parse_flag(text: str, what: str) -> bool:
    """A yes/no query parameter; anything else is `InvalidInput` (not taken as yes)."""
    try:
        return _FLAGS[text.strip().lower()]
    except KeyError:
        raise InvalidInput(
            f"{what} must be 1/true/yes/on or 0/false/no/off, got {text!r}"
        ) from None


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


def parse_status(text: str) -> str:
    """A status name, or `InvalidInput` listing the statuses there are."""
    try:
        return TaskStatus(text).value
    except ValueError:
        choices = ", ".join(s.value for s in TaskStatus)
        raise InvalidInput(f"unknown status {text[:40]!r} (one of: {choices})") from None


def parse_queue(text: str) -> str:
    return validation.check_queue(text)


@dataclasses.dataclass(frozen=True, slots=True)
class TaskFilter:
    """What the task list shows: filters, page size and one page bound.

    `before_id` pages towards older tasks (the next page), `after_id` towards newer ones
    (the previous page); a page never has both.
    """

    status: str | None = None
    queue: str | None = None
    name: str | None = None
    before_id: int | None = None
    after_id: int | None = None
    limit: int = DEFAULT_LIMIT

    @classmethod
    def parse(cls, params: Mapping[str, str]) -> TaskFilter:
        """From a query string; empty values (a form's "any") mean no filter."""

        def text(key: str) -> str | None:
            value = params.get(key, "").strip()
            return value or None

        def bound(key: str) -> int | None:
            value = text(key)
            return None if value is None else parse_int(value, key, 1, MAX_ID)

        status, queue, name, limit = text("status"), text("queue"), text("name"), text("limit")
        found = cls(
            status=None if status is None else parse_status(status),
            queue=None if queue is None else parse_queue(queue),
            name=None if name is None else validation.check_name(name),
            before_id=bound("before_id"),
            after_id=bound("after_id"),
            limit=DEFAULT_LIMIT if limit is None else parse_int(limit, "limit", 1, MAX_LIMIT),
        )
        if found.before_id is not None and found.after_id is not None:
            raise InvalidInput("give before_id or after_id, not both")
        return found

    def store_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for `TaskStore.list`, one row more to learn if a page follows."""
        fields = dataclasses.asdict(self)
        del fields["after_id"]
        return {**fields, "limit": self.limit + 1}

    def query(self, **changes: Any) -> str:
        """This filter as a query string, with `changes` applied; empty values left out.

        A new page bound replaces the old one: the two bounds never travel together.
        """
        fields = {**dataclasses.asdict(self), "before_id": None, "after_id": None, **changes}
        if fields["limit"] == DEFAULT_LIMIT:
            fields["limit"] = None
        return urlencode({k: v for k, v in fields.items() if v is not None})
