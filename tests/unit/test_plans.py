"""Plans run by the driver give back what SQLAlchemy would: JSON, datetimes and booleans
that SQLite keeps as text and integers are parsed (`Plan.processed`)."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    DateTime,
    Integer,
    MetaData,
    Table,
    bindparam,
    create_engine,
    insert,
    select,
)

from taskstore.backends.plans import Plans

META = MetaData()
T = Table(
    "t",
    META,
    Column("id", Integer, primary_key=True),
    Column("doc", JSON),
    Column("at", DateTime),
    Column("flag", Boolean),
)


def test_driver_rows_processed_by_a_plan_equal_what_sqlalchemy_returns() -> None:
    engine = create_engine("sqlite://")
    META.create_all(engine)
    with engine.begin() as conn:
        conn.execute(
            insert(T),
            [
                {
                    "id": 1,
                    "doc": {"a": [1, 2]},
                    "at": dt.datetime(2026, 1, 2, 3, 4, 5, 6),
                    "flag": False,
                },
                {"id": 2, "doc": None, "at": None, "flag": True},
            ],
        )
    stmt = select(T).where(T.c.id >= bindparam("p_from")).order_by(T.c.id)
    with engine.connect() as conn:
        expected = [tuple(row) for row in conn.execute(stmt, {"p_from": 1})]
        plans = Plans()
        plan = plans.get(stmt, engine.dialect)
        assert plan is not None and plans.get(stmt, engine.dialect) is plan
        raw = conn.connection.driver_connection.execute(plan.sql, plan.arguments({"p_from": 1}))
        driver_rows = raw.fetchall()
    assert driver_rows != expected  # the driver leaves JSON and datetimes as text
    assert plan.processed(driver_rows) == expected
    assert expected[0][1] == {"a": [1, 2]} and expected[1][3] is True
