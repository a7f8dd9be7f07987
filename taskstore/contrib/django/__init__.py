"""taskstore as a backend of Django's own task framework (``django.tasks``, Django 6).

Settings::

    TASKS = {"default": {"BACKEND": "taskstore.contrib.django.TaskstoreBackend",
                         "OPTIONS": {"database_url": "postgresql://..."}}}
    INSTALLED_APPS += ["taskstore.contrib.django"]

Tasks declared with ``django.tasks.task`` are enqueued with ``.enqueue()`` and run by
``python manage.py taskstore_worker``; a result's id is the taskstore task id. The backend
class loads on first use, so listing this package in INSTALLED_APPS stays cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from taskstore.contrib.django.backend import TaskstoreBackend

__all__ = ["TaskstoreBackend"]


def __getattr__(name: str) -> Any:
    if name == "TaskstoreBackend":
        from taskstore.contrib.django.backend import TaskstoreBackend

        return TaskstoreBackend
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
