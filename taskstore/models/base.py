"""Declarative base shared by every taskstore table (and user subclasses of its entities).

The naming convention keeps constraint names stable across backends, which alembic needs
for batch mode on SQLite. `UTCDateTime` makes every datetime timezone-aware in UTC on
both backends (SQLite stores naive ISO strings; we attach UTC on the way out).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import JSON, DateTime, MetaData
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncAttrs
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.types import TypeDecorator

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[dt.datetime]):
    """A timezone-aware datetime, stored in UTC."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Any) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given; taskstore needs timezone-aware datetimes")
        # SQLite's DATETIME drops the offset, so normalise first: its strings are then UTC
        # and sort in time order.
        return value.astimezone(dt.UTC)

    def process_result_value(self, value: Any, dialect: Any) -> dt.datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value


#: JSON document column: JSONB on PostgreSQL (indexable, compact), JSON text elsewhere.
JSONDocument = JSON().with_variant(JSONB(), "postgresql")


class JSONText(TypeDecorator[str]):
    """Binds a JSON document that is already encoded text, so it is not encoded twice."""

    impl = JSONDocument
    cache_ok = True

    def bind_processor(self, dialect: Any) -> None:
        return None


class Base(AsyncAttrs, DeclarativeBase):
    """Base of every ORM entity taskstore defines; user entities may extend it too.

    `AsyncAttrs` lets code await relationships explicitly: ``await media.awaitable_attrs.captions``.
    """

    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {dt.datetime: UTCDateTime()}
