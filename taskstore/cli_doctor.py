"""`taskstore doctor`: the queue table's health (see `taskstore.doctor`), each problem
with its fix; exit 1 when there is one, so a cron job or a CI step can alert on it."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

import click

from taskstore.cli_common import Command, database_url_option, emit_json
from taskstore.cli_store import with_store

if TYPE_CHECKING:
    from taskstore.doctor import Report


@click.command(cls=Command)
@click.option("--json", "as_json", is_flag=True, help="One JSON document.")
@database_url_option
def doctor(url: str | None, as_json: bool) -> None:
    """Check what keeps the queue fast: indexes, dead rows, vacuum, free space and
    retention. Prints the fix of each problem; exits 1 if there is any."""
    from taskstore.doctor import examine

    report = with_store(url, examine)
    if as_json:
        emit_json(report.to_json())
    else:
        click.echo(render(report))
    sys.exit(0 if report.healthy else 1)


def render(report: Report) -> str:
    from taskstore.formatting import table

    def size(value: int | None) -> str | None:
        return None if value is None else f"{value / 2**20:,.1f} MB"

    rows = [
        [t.name, f"{t.live_rows:,}", _count(t.dead_rows), size(t.table_bytes), size(t.index_bytes)]
        for t in report.health.tables
    ]
    lines = [table(["table", "rows", "dead", "size", "indexes"], rows), ""]
    for finding in report.findings:
        lines.append(f"{finding.level:<5} {finding.check}: {finding.message}")
        if finding.fix:
            lines += [f"      fix: {line}" for line in finding.fix.splitlines()]
    verdict = "healthy" if report.healthy else "problems found (fixes above)"
    return "\n".join([*lines, "", verdict])


def _count(value: int | None) -> str | None:
    return None if value is None else f"{value:,}"


COMMANDS = [doctor]
