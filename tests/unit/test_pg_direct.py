"""Plans of the PostgreSQL direct path, compiled without a database."""

from __future__ import annotations

from sqlalchemy import bindparam, column, select, table, update
from sqlalchemy.dialects.postgresql.asyncpg import dialect

from taskstore.backends.plans import compile_plan

T = table("t", column("id"), column("status"), column("worker"))


def test_a_plan_orders_the_arguments_as_the_sql_numbers_them_and_fills_in_constants() -> None:
    stmt = (
        update(T)
        .where(T.c.id == bindparam("p_id"), T.c.worker == bindparam("p_worker"))
        .values(status="done")
        .returning(T.c.id)
    )
    plan = compile_plan(stmt, dialect())
    assert plan is not None
    assert "$1" in plan.sql and "$3" in plan.sql
    args = plan.arguments({"p_worker": "w", "p_id": 7})
    assert sorted(map(str, args)) == ["7", "done", "w"]
    assert args[plan.names.index("p_id")] == 7


def test_statements_that_need_sqlalchemy_per_execution_get_no_plan() -> None:
    computed = select(T.c.id).where(T.c.worker == bindparam("w", callable_=lambda: "now"))
    expanding = select(T.c.id).where(T.c.id.in_(bindparam("ids", expanding=True)))
    assert compile_plan(computed, dialect()) is None
    assert compile_plan(expanding, dialect()) is None
