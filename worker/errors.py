"""Exceptions handlers raise to steer the retry policy."""

from __future__ import annotations


class NonRetryable(Exception):
    """Raise (or subclass) to fail the task at once, whatever attempts are left."""


class TaskTimeout(Exception):
    """The handler ran past its ``timeout`` and was cancelled."""


class WrongArguments(NonRetryable):
    """The payload does not match the handler's signature."""


class UnknownTask(Exception):
    """No handler with that name is registered in this worker."""
