"""Smoke test of the benchmark harness: a tiny SQLite run, as a subprocess, in JSON.

It checks the harness still runs end to end and reports what it promises; it asserts no
timing (how fast is for people to read, not for CI to gate on).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_quick_drain_and_enqueue_on_sqlite_report_positive_rates() -> None:
    command = [
        sys.executable,
        "-m",
        "benchmarks",
        "--quick",
        "--scenario",
        "drain",
        "--scenario",
        "enqueue",
        "--backend",
        "sqlite",
        "--tasks",
        "300",
        "--json",
    ]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]

    report = json.loads(done.stdout)  # stdout is the JSON document and nothing else
    assert report["config"]["tasks"] == 300
    enqueue = report["results"]["enqueue"]["sqlite"]
    assert enqueue["taskstore"]["single_rate"] > 0
    assert enqueue["taskstore"]["many_rate"] > 0
    assert enqueue["raw"]["rate"] > 0
    assert enqueue["ratios"]["enqueue_many/raw"] > 0
    assert enqueue["pgqueuer"] == {"skipped": "PostgreSQL only"}

    drain = report["results"]["drain"]["sqlite"]
    assert drain["taskstore"]["tasks"] == 300
    assert drain["taskstore"]["rate"] > 0
    assert drain["taskstore"]["peak_rss_mb"] > 0
    assert drain["raw"]["rate"] > 0
    assert drain["ratios"]["taskstore/raw"] > 0
    assert "errors" not in drain


def test_flow_reports_the_pair_whose_ratio_is_the_median() -> None:
    from benchmarks.scenarios.flow import _median_pair

    pairs = [{"ratio": r, "n": i} for i, r in enumerate([0.9, None, 0.6, 0.75, 0.8])]
    assert _median_pair(pairs)["n"] == 3  # 0.75: the middle of the four measured
    assert _median_pair([{"ratio": None, "n": 0}])["n"] == 0  # none measured: the first
