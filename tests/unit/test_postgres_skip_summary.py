"""Without a PostgreSQL server the summary says once how many PostgreSQL cases were left
out and why; with TASKSTORE_TEST_POSTGRES_URL set they are all collected as before."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import PG_ENV

ROOT = Path(__file__).resolve().parents[2]
CASE = "tests/integration/test_cli.py::test_human_output_is_an_aligned_table"
OTHER = "tests/integration/test_cli.py::test_unmigrated_database_says_run_taskstore_migrate"
ANOTHER = "tests/integration/test_cli.py::test_cancel_then_retry_then_purge"


def pytest_run(*args: str, pg_url: str | None) -> str:
    env = {
        k: v for k, v in os.environ.items() if k not in (PG_ENV, "TASKSTORE_TEST_REQUIRE_POSTGRES")
    }
    if pg_url is not None:
        env[PG_ENV] = pg_url
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args],
        capture_output=True, text=True, cwd=ROOT, env=env, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def test_without_postgres_one_summary_line_names_the_count_and_the_reason() -> None:
    out = pytest_run("-q", "-rs", CASE, OTHER, ANOTHER, pg_url=None)
    line = f"PostgreSQL tests: 2 skipped ({PG_ENV} is not set)"
    assert out.count(line) == 1, out
    assert "SKIPPED" not in out and "[postgres]" not in out


def test_with_postgres_configured_every_postgres_case_is_collected() -> None:
    out = pytest_run("--collect-only", "-q", CASE, pg_url="postgresql://nobody@127.0.0.1:1/x")
    assert f"{CASE}[postgres]" in out and "PostgreSQL tests:" not in out.split("\n\n")[-1]
