"""Exceptions of the worker package: those handlers raise to steer the retry policy, and
those that refuse a handler or its arguments before anything is written."""

from __future__ import annotations

from taskstore.errors import InvalidInput


class NonRetryable(Exception):
    """Raise (or subclass) to fail the task at once, whatever attempts are left."""


class TaskTimeout(Exception):
    """The handler ran past its ``timeout`` and was cancelled."""


class RegistrationError(InvalidInput):
    """A handler or hook cannot be registered as declared."""


class WrongArguments(NonRetryable, InvalidInput):
    """The arguments (the payload) do not match the handler's signature.

    Raised to a producer before anything is written, and by the worker (failing the task
    at once) for a payload that was enqueued by name and does not fit.
    """


class UnknownTask(Exception):
    """No handler with that name is registered in this worker."""
