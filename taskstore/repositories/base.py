"""BaseRepository[T]: ORM create / read / list / delete for one entity class.

Repositories add and flush but never commit: the caller owns the transaction (in a
handler, `ctx.session()` commits together with the task's completion).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Generic, TypeVar

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from taskstore.errors import EntityNotFound
from taskstore.models.base import Base

EntityT = TypeVar("EntityT", bound=Base)
__all__ = ["BaseRepository", "EntityNotFound"]


class BaseRepository(Generic[EntityT]):
    """Generic persistence for one entity class (and, polymorphically, its subclasses)."""

    model: type[EntityT]

    def __init__(self, session: AsyncSession, model: type[EntityT] | None = None) -> None:
        self.session = session
        if model is not None:
            self.model = model

    async def create(self, entity: EntityT) -> EntityT:
        """Add and flush, so generated keys are set; the caller commits."""
        self.session.add(entity)
        await self.session.flush()
        return entity

    async def create_many(self, entities: Sequence[EntityT]) -> Sequence[EntityT]:
        self.session.add_all(entities)
        await self.session.flush()
        return entities

    async def get(self, entity_id: Any) -> EntityT | None:
        return await self.session.get(self.model, entity_id)

    async def read(self, entity_id: Any) -> EntityT:
        """Like `get`, but a missing row is an error naming the class and id."""
        entity = await self.get(entity_id)
        if entity is None:
            raise EntityNotFound(f"no {self.model.__name__} with id {entity_id!r}")
        return entity

    async def list(self, *, limit: int = 100, **filters: Any) -> Sequence[EntityT]:
        stmt = select(self.model).filter_by(**filters).limit(limit)
        return (await self.session.scalars(stmt)).all()

    async def delete(self, entity_id: Any) -> None:
        await self.session.delete(await self.read(entity_id))
        await self.session.flush()
