"""Exceptions that cross the store boundary.

Every error a user can cause carries a one-line message naming the problem; the CLI prints
that line and exits with `exit_code` (2 for bad input, 1 for runtime failures).
"""

from __future__ import annotations


class TaskStoreError(Exception):
    """Base of every error taskstore raises on purpose."""

    exit_code = 1


class InvalidInput(TaskStoreError, ValueError):
    """The caller passed something the store refuses before writing anything."""

    exit_code = 2


class ConfigError(TaskStoreError):
    """The configuration (database URL, a setting) is malformed."""

    exit_code = 2


class DatabaseUnavailable(TaskStoreError):
    """The database could not be reached or refused the connection."""


class DatabaseRefused(TaskStoreError):
    """The database was reached but refused what was asked (not a reachability problem)."""


class SchemaOutOfDate(TaskStoreError):
    """The database schema is behind the code; `taskstore migrate` fixes it."""


class TaskNotFound(TaskStoreError, LookupError):
    """No task has that id."""

    exit_code = 2


class IllegalTransition(TaskStoreError):
    """The task's current status does not allow the requested transition."""


class LeaseLost(TaskStoreError):
    """A fenced write was refused: the caller no longer owns that attempt of the task."""


class EntityNotFound(TaskStoreError, LookupError):
    """No entity of that class has that id."""

    exit_code = 2


class WrongEventLoop(TaskStoreError, RuntimeError):
    """A store's connections are in use by an event loop running in another thread."""


class StoreClosed(TaskStoreError, RuntimeError):
    """The store was closed (`open` it again to use it)."""
