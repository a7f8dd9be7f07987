"""`TaskDependency`: one row per edge of a workflow (a task and one task it waits for).

A task with dependencies is ``waiting`` until every one of them completed; the rows go
with either task (ON DELETE CASCADE), and retention never deletes a task that a waiting
task still depends on.
"""

from __future__ import annotations

from sqlalchemy import ForeignKey, Index
from sqlalchemy.orm import Mapped, mapped_column

from taskstore.models.base import Base
from taskstore.models.task import TaskId

_TASK_FK = "taskstore_tasks.id"


class TaskDependency(Base):
    __tablename__ = "taskstore_task_deps"

    #: the waiting task
    task_id: Mapped[int] = mapped_column(
        TaskId, ForeignKey(_TASK_FK, ondelete="CASCADE"), primary_key=True
    )
    #: the task it waits for
    depends_on_id: Mapped[int] = mapped_column(
        TaskId, ForeignKey(_TASK_FK, ondelete="CASCADE"), primary_key=True
    )


# An ending looks up its dependents by this column.
Index("ix_taskstore_task_deps_depends_on", TaskDependency.depends_on_id, TaskDependency.task_id)
