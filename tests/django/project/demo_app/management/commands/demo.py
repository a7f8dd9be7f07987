"""``manage.py demo ACTION ...``: what the tests do from a Django process, as JSON.

- ``enqueue CALLS`` (a JSON list of {"task", "args", "kwargs", "using"}): prints the ids;
  ``"using"`` may hold priority, queue_name and run_after_seconds (from now);
- ``aenqueue CALLS``: the same through ``aenqueue()``;
- ``results IDS``: prints each result (``get_result``; ``aget_result`` for odd positions,
  and ``refresh()`` on a result fetched first; ``{"missing": why}`` for none);
- ``atomic TASK commit|rollback``: a Note and the task in one ``transaction.atomic()``;
- ``work_in_process``: the worker through ``call_command``, ``--burst``;
- ``work_with_bad_options``: the same with an invalid ``--queue``: what it raised;
- ``notes``: how many Notes there are.
"""

import asyncio
import datetime as dt
import json

from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.tasks import default_task_backend
from django.tasks.exceptions import TaskResultDoesNotExist
from django.utils import timezone
from django.utils.module_loading import import_string

from demo_app.models import Note


class Rollback(Exception):
    pass


def _configured(call):
    task = import_string(call["task"])
    using = dict(call.get("using", {}))
    if "run_after_seconds" in using:
        seconds = using.pop("run_after_seconds")
        using["run_after"] = timezone.now() + dt.timedelta(seconds=seconds)
    return task.using(**using) if using else task


def _result_doc(result):
    doc = {
        "id": result.id,
        "task": result.task.module_path,
        "status": str(result.status),
        "args": result.args,
        "kwargs": result.kwargs,
        "errors": [
            {"exception_class_path": e.exception_class_path, "traceback": e.traceback}
            for e in result.errors
        ],
        "worker_ids": result.worker_ids,
        "attempts": result.attempts,
        "queue_name": result.task.queue_name,
        "priority": result.task.priority,
    }
    for name in ("enqueued_at", "started_at", "finished_at", "last_attempted_at"):
        value = getattr(result, name)
        doc[name] = value.isoformat() if value else None
    if result.status == "SUCCESSFUL":
        doc["return_value"] = result.return_value
    if result.errors:
        try:
            doc["exception_class"] = result.errors[0].exception_class.__name__
        except (ImportError, ValueError) as exc:
            doc["exception_class"] = f"unresolvable: {exc}"
    return doc


class Command(BaseCommand):
    def add_arguments(self, parser):
        parser.add_argument("action")
        parser.add_argument("values", nargs="*")

    def handle(self, action, values, **options):
        out = getattr(self, "do_" + action)(*values)
        self.stdout.write(json.dumps(out))

    def do_enqueue(self, calls):
        return [
            _configured(c).enqueue(*c.get("args", []), **c.get("kwargs", {})).id
            for c in json.loads(calls)
        ]

    def do_aenqueue(self, calls):
        async def run():
            return [
                (await _configured(c).aenqueue(*c.get("args", []), **c.get("kwargs", {}))).id
                for c in json.loads(calls)
            ]

        return asyncio.run(run())

    def do_results(self, *ids):
        docs = []
        for index, result_id in enumerate(ids):
            try:
                if index % 2:
                    result = asyncio.run(default_task_backend.aget_result(result_id))
                else:
                    result = default_task_backend.get_result(result_id)
                    result.refresh()
            except TaskResultDoesNotExist as exc:
                docs.append({"missing": str(exc)})
                continue
            docs.append(_result_doc(result))
        return docs

    def do_atomic(self, task_path, outcome):
        task = import_string(task_path)
        found = {}
        try:
            with transaction.atomic():
                Note.objects.create(text="with a task")
                found["id"] = task.enqueue().id
                if outcome == "rollback":
                    raise Rollback
        except Rollback:
            pass
        return found

    def do_work_in_process(self):
        call_command("taskstore_worker", "--burst", "--log-level", "warning")
        return "returned"

    def do_work_with_bad_options(self):
        try:
            call_command("taskstore_worker", "--queue", "BAD!", "--burst")
        except CommandError as exc:
            return {"raised": "CommandError", "returncode": exc.returncode}
        except SystemExit as exc:
            return {"raised": "SystemExit", "returncode": exc.code}
        return {"raised": None}

    def do_notes(self):
        return Note.objects.count()
