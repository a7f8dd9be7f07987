"""The worker package's modules import each other in one direction only (function-level
imports included): no import circles, so each can be read and loaded on its own."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

WORKER = Path(__file__).resolve().parents[2] / "worker"


def imported_worker_modules(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("worker."):
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("worker.")}
    return found


def import_graph() -> dict[str, set[str]]:
    modules = {f"worker.{p.stem}": p for p in WORKER.glob("*.py") if p.stem != "__init__"}
    return {name: imported_worker_modules(path) & modules.keys() for name, path in modules.items()}


def cycle_through(graph: dict[str, set[str]], start: str) -> list[str] | None:
    stack = [(start, [start])]
    seen: set[str] = set()
    while stack:
        module, path = stack.pop()
        for target in graph[module]:
            if target == start:
                return [*path, start]
            if target not in seen:
                seen.add(target)
                stack.append((target, [*path, target]))
    return None


def test_worker_modules_have_no_import_circles() -> None:
    graph = import_graph()
    assert "worker.scheduler" not in graph["worker.registry"]
    circles = [c for m in graph if (c := cycle_through(graph, m))]
    assert circles == []


def test_registering_a_task_without_a_schedule_does_not_load_the_cron_library() -> None:
    code = (
        "import sys; from worker import Registry, task; "
        "task(name='a.b', registry=Registry())(lambda ctx: None); "
        "print('croniter' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.stdout.strip() == "False", result.stderr
