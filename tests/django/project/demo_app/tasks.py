"""Django tasks of the demo app: sync, async, failing, with context, on another queue."""

import asyncio
import os

from django.tasks import task

from demo_app.models import Note


class Boom(Exception):
    """What `explode` raises."""


@task
def add(a, b):
    return a + b


@task
async def async_add(a, b):
    await asyncio.sleep(0)
    return a + b


@task
def explode(message):
    raise Boom(message)


@task(takes_context=True)
def which_attempt(context):
    return {"attempt": context.attempt, "id": context.task_result.id}


@task(queue_name="emails", priority=10)
def send_mail(to, subject="hello"):
    return f"sent {subject} to {to}"


@task
def process_id(seconds):
    """Which worker process ran it (after `seconds`, so that the others claim some too)."""
    import time

    time.sleep(seconds)
    return os.getpid()


@task
def count_notes():
    return Note.objects.count()


@task
def returns_a_set():
    """Runs to its end, then returns what JSON cannot hold."""
    return {1, 2}


def not_a_task():
    """A plain function: the worker refuses to run it as a task."""
    return "never"
