"""Results: what each scenario measured, as aligned text tables and as one JSON document."""

from __future__ import annotations

import dataclasses
import json
import sys
from collections.abc import Sequence
from typing import Any

from benchmarks.pgq_peer import ONLY_POSTGRES

Cells = list[tuple[str, str]]


@dataclasses.dataclass
class Result:
    """One scenario on one backend: figures per system, and the cells of its table row."""

    scenario: str
    backend: str
    data: dict[str, Any]
    cells: Cells
    errors: list[str] = dataclasses.field(default_factory=list)


def say(message: str) -> None:
    """Progress goes to stderr, so stdout stays the table (or the JSON document)."""
    print(message, file=sys.stderr, flush=True)


# ------------------------------------------------------------------ number formatting
def rate(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}/s"


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    if not numerator or not denominator:
        return None
    return round(numerator / denominator, 3)


def times(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


def ms(value: float | None) -> str:
    return "-" if value is None else f"{value:,.1f} ms"


def us(value: float | None) -> str:
    return "-" if value is None else f"{value:,.1f} us"


def mb(value: float | None) -> str:
    return "-" if value is None else f"{value:,.1f} MB"


def seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:,.2f} s"


def figure(system: dict[str, Any], key: str, fmt: Any) -> str:
    """A system's figure, or why it is missing ("skipped: ...", "error")."""
    if "skipped" in system:
        return "n/a" if system["skipped"] == ONLY_POSTGRES else "skipped"
    if "error" in system:
        return "error"
    return fmt(system.get(key))


# ------------------------------------------------------------------------ rendering
def render(results: Sequence[Result], titles: dict[str, str]) -> str:
    """One block per scenario: a title, then one aligned row per backend."""
    blocks = []
    for scenario in dict.fromkeys(r.scenario for r in results):
        rows = [r for r in results if r.scenario == scenario]
        lines = [titles.get(scenario, scenario)]
        lines += _aligned([[(r.scenario, r.backend), *r.cells] for r in rows])
        for r in rows:
            lines += [f"  ! {r.backend}: {e}" for e in r.errors]
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


def _aligned(rows: list[Cells]) -> list[str]:
    """Pad cell i of every row to the widest cell i, labels and values in sub-columns."""
    columns = max(len(r) for r in rows)
    label_w = [max((len(r[i][0]) for r in rows if i < len(r)), default=0) for i in range(columns)]
    value_w = [max((len(r[i][1]) for r in rows if i < len(r)), default=0) for i in range(columns)]
    out = []
    for row in rows:
        # The first cell names the row (scenario, backend): left-aligned; figures: right.
        parts = [f"{row[0][0]:<{label_w[0]}} {row[0][1]:<{value_w[0]}}"]
        parts += [
            f"{label:<{label_w[i]}} {value:>{value_w[i]}}"
            for i, (label, value) in enumerate(row[1:], start=1)
        ]
        out.append("  ".join(parts).rstrip())
    return out


def document(config: dict[str, Any], results: Sequence[Result]) -> str:
    """The ``--json`` output: results[scenario][backend] = figures per system."""
    by_scenario: dict[str, dict[str, Any]] = {}
    for r in results:
        entry = dict(r.data)
        if r.errors:
            entry["errors"] = r.errors
        by_scenario.setdefault(r.scenario, {})[r.backend] = entry
    return json.dumps({"config": config, "results": by_scenario}, indent=2, sort_keys=True)
