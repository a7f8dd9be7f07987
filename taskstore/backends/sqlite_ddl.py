"""Schema edits SQLite cannot make with ALTER, made by its documented procedure.

SQLite cannot alter a table's constraint, and rebuilding the task table would fire every
reference's ON DELETE action. A constraint that every existing row still satisfies (one
loosened, or one written differently for the same set of values) is changed instead by
editing the table's stored definition, with ``writable_schema`` on, and bumping
``schema_version`` so every connection reads the new definition (see "PRAGMA
writable_schema" and "Making Other Kinds Of Table Schema Changes" in SQLite's manual).
Migrations call it; nothing else should.
"""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.engine import Connection


def replace_in_table_sql(bind: Connection, table: str, old: str, new: str) -> None:
    """Replace `old` with `new` in `table`'s stored CREATE TABLE statement."""
    version = bind.exec_driver_sql("PRAGMA schema_version").scalar_one()
    bind.exec_driver_sql("PRAGMA writable_schema = ON")
    bind.execute(
        text(
            "UPDATE sqlite_master SET sql = replace(sql, :old, :new) "
            "WHERE type = 'table' AND name = :table"
        ),
        {"old": old, "new": new, "table": table},
    )
    # A PRAGMA takes no bind parameters: the value is a whole number read just above.
    bind.exec_driver_sql("PRAGMA schema_version = " + str(int(version) + 1))
    bind.exec_driver_sql("PRAGMA writable_schema = OFF")
