"""Tests of the demo app as an application writes them, run by ``manage.py test``: the
task tables live in Django's test database, whatever database that is."""

from django.tasks import TaskResultStatus, default_task_backend
from django.tasks.exceptions import TaskResultDoesNotExist
from django.test import TestCase, TransactionTestCase

from demo_app.models import Note
from demo_app.tasks import add


class EnqueueInATestCase(TestCase):
    def test_an_enqueue_joins_the_tests_transaction(self) -> None:
        Note.objects.create(text="with a task")
        result = add.enqueue(1, 2)
        self.assertEqual((result.status, result.args), (TaskResultStatus.READY, [1, 2]))
        # Not committed yet: a task database of its own cannot see it (PostgreSQL), an
        # in-memory one shared with the test's connection reads it uncommitted (SQLite).
        # Neither may fail on the test's open transaction.
        try:
            found = default_task_backend.get_result(result.id)
        except TaskResultDoesNotExist:
            return
        self.assertEqual(found.args, [1, 2])


class EnqueueOutsideATransaction(TransactionTestCase):
    def test_an_enqueued_task_is_read_back_ready(self) -> None:
        result = add.enqueue(3, 4)
        found = default_task_backend.get_result(result.id)
        self.assertEqual((found.status, found.args), (TaskResultStatus.READY, [3, 4]))


class NoTaskLeftFromTheTestBefore(TransactionTestCase):
    """Django flushes its tables after each such test: the task tables with them."""

    left: str | None = None

    def test_1_leaves_a_task(self) -> None:
        NoTaskLeftFromTheTestBefore.left = add.enqueue(5, 6).id

    def test_2_finds_none(self) -> None:
        self.assertIsNotNone(self.left)
        with self.assertRaises(TaskResultDoesNotExist):
            default_task_backend.get_result(self.left)


class NoTasks(TestCase):
    def test_a_test_without_tasks_runs_too(self) -> None:
        self.assertEqual(Note.objects.count(), 0)
