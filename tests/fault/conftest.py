"""Fixtures of the fault battery: the `--soak` multiplier, a seeded RNG, and figures.

`--soak N` (default 1) multiplies task counts, fault counts and durations for a longer
manual run: ``pytest tests/fault --soak 10``. The option is registered here, so pass it
with ``tests/fault`` (or a file in it) on the command line. Every test records its
figures (tasks, kills, duplicates, recovery times) with the `figures` fixture; they are
printed in a "fault figures" section at the end of the run, with the seed of the random
faults: ``TASKSTORE_FAULT_SEED=<seed>`` replays them.

Some tests restart the PostgreSQL server: never run two of these batteries against the
same server at once.
"""

from __future__ import annotations

import os
import random
from collections.abc import Callable

import pytest

_FIGURES: list[str] = []


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--soak",
        type=int,
        default=1,
        metavar="N",
        help="fault battery: multiply task counts, faults and durations by N (default 1)",
    )


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if _FIGURES:
        terminalreporter.section("fault figures")
        for line in _FIGURES:
            terminalreporter.write_line(line)


@pytest.fixture
def soak(request: pytest.FixtureRequest) -> int:
    """How many times bigger than the default (CI-sized) run this one is."""
    factor = request.config.getoption("--soak", default=1)
    return max(1, int(factor or 1))


@pytest.fixture
def rng(request: pytest.FixtureRequest) -> random.Random:
    """Random faults, reproducible: the seed is printed with the figures."""
    seed = int(os.environ.get("TASKSTORE_FAULT_SEED") or random.randrange(2**32))
    request.node.user_properties.append(("seed", seed))
    return random.Random(seed)


@pytest.fixture
def figures(request: pytest.FixtureRequest) -> Callable[..., None]:
    """``figures(tasks=3000, kills=5, ...)`` records one line for the end-of-run summary."""

    def record(**values: object) -> None:
        props = dict(request.node.user_properties)
        shown = " ".join(f"{k}={v}" for k, v in {**values, **props}.items())
        _FIGURES.append(f"{request.node.name}: {shown}")

    return record
