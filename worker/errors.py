"""Exceptions of the worker package: those handlers raise to steer the retry policy, and
those that refuse a handler or its arguments before anything is written."""

from __future__ import annotations

from taskstore.errors import InvalidInput, TaskStoreError


class NonRetryable(Exception):
    """Raise (or subclass) to fail the task at once, whatever attempts are left."""


class Snooze(Exception):
    """Raise ``Snooze(seconds)`` in a handler to run the task again that much later.

    The task goes back to ``created`` with its ``run_at`` pushed out, and the attempt is
    not counted: waiting for an outside condition (a rate-limited API, a file not there
    yet) is not a failure.
    """

    def __init__(self, seconds: float) -> None:
        if isinstance(seconds, bool) or not isinstance(seconds, int | float):
            raise TypeError(f"Snooze takes a number of seconds, got {seconds!r}")
        if not 0 <= seconds <= 366 * 86400:
            raise ValueError(f"Snooze seconds must be from 0 to a year, got {seconds!r}")
        super().__init__(f"snoozed for {seconds:g}s")
        self.seconds = float(seconds)


class TaskTimeout(Exception):
    """The handler ran past its ``timeout`` and was cancelled."""


class RegistrationError(InvalidInput):
    """A handler or hook cannot be registered as declared."""


class WrongArguments(NonRetryable, InvalidInput):
    """The arguments (the payload) do not match the handler's signature.

    Raised to a producer before anything is written, and by the worker (failing the task
    at once) for a payload that was enqueued by name and does not fit.
    """


class HookFailed(TaskStoreError):
    """A startup or shutdown hook raised: the worker stops (exit code 1)."""


class UnknownTask(Exception):
    """No handler with that name is registered in this worker."""
