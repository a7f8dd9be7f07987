"""Property-based bad input: arbitrary text never produces a traceback, and JSON round-trips.

- `taskstore enqueue` with arbitrary text for name, queue and payload (click's runner):
  exit 0 with an id on stdout, or exit 2 with one line starting 'taskstore: error:'.
- `taskstore.validation.new_task` and the store's JSON codec: any JSON-able value in a
  payload comes back equal, from the encoder alone and (as JSON: numbers as numbers)
  through each database; a value a database cannot hold must be refused as bad input,
  never as a driver error.
"""

from __future__ import annotations

import asyncio
import json
from decimal import Decimal
from typing import Any

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from taskstore import TaskStore
from taskstore.cli import main
from taskstore.errors import InvalidInput
from taskstore.validation import new_task

pytestmark = pytest.mark.fault

BACKENDS = [
    pytest.param("sqlite"),
    pytest.param("postgres", marks=[pytest.mark.postgres]),
]
FIXTURE_REUSE = [HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
SURROGATE, NUL = "\ud800", "\x00"

# Every code point, surrogates and NUL included: both are valid in JSON text.
texts = st.text(st.characters(exclude_categories=()))
names = st.text(max_size=40) | st.from_regex(r"[A-Za-z_][A-Za-z0-9_.:-]{0,30}", fullmatch=True)
queues = st.text(max_size=70) | st.from_regex(r"[a-z0-9][a-z0-9_-]{0,20}", fullmatch=True)
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | texts,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(texts, inner, max_size=4),
    max_leaves=12,
)
payload_texts = st.text(max_size=60) | st.dictionaries(texts, json_values).map(json.dumps)


def _enqueue(url: str, name: str, queue: str, payload: str) -> Any:
    args = ["--database-url", url, "enqueue", "--queue", queue, "--payload", payload, "--", name]
    return CliRunner().invoke(main, args)


@pytest.mark.parametrize("backend", BACKENDS)
@settings(max_examples=80, deadline=None, suppress_health_check=FIXTURE_REUSE)
@given(name=names, queue=queues, payload=payload_texts)
@example(name="faulty.noop", queue="default", payload='{"text": "nul \\u0000 inside"}')
@example(name="faulty.noop", queue="default", payload='{"text": "half a pair \\ud800"}')
def test_cli_enqueue_of_arbitrary_text_never_shows_a_traceback(
    db_url: str, name: str, queue: str, payload: str
) -> None:
    result = _enqueue(db_url, name, queue, payload)
    assert result.exception is None or isinstance(result.exception, SystemExit), result
    assert result.exit_code in (0, 2), result.stderr
    if result.exit_code == 0:
        assert result.stdout.strip().isdigit() and result.stderr == ""
    else:
        lines = result.stderr.splitlines()
        assert len(lines) == 1 and lines[0].startswith("taskstore: error:"), result.stderr
        assert result.stdout == ""


def _unstorable(value: Any) -> bool:
    """Holds text no database stores: NUL (PostgreSQL) or an unpaired surrogate (UTF-8)."""
    text = json.dumps(value, ensure_ascii=False)
    return "\\u0000" in text or any(0xD800 <= ord(c) <= 0xDFFF for c in text)


@settings(max_examples=300, deadline=None)
@given(value=json_values)
@example(value=SURROGATE)
def test_the_json_codec_round_trips_every_json_value(value: Any) -> None:
    """Every value comes back equal; only text no database can store may be refused."""
    payload = {"value": value}
    try:
        encoded = new_task("faulty.noop", payload, max_payload_bytes=10**7).payload_json
    except InvalidInput:
        assert _unstorable(value)
        return
    assert json.loads(encoded) == payload


def _as_json(value: Any) -> Any:
    """The value as JSON means it: numbers compared as numbers, whatever their Python type
    (PostgreSQL's jsonb returns 6.9e+16 as the integer 69000000000000000)."""
    return json.loads(json.dumps(value), parse_float=Decimal, parse_int=Decimal)


async def _rows(store: TaskStore) -> int:
    return sum(n for s in await store.stats() for n in s.counts.values())


async def _round_trip(url: str, value: Any) -> None:
    async with TaskStore.from_url(url) as store:
        before = await _rows(store)
        try:
            task_id = await store.enqueue("faulty.noop", {"value": value})
        except InvalidInput:  # refused as bad input: acceptable, if nothing was written
            assert _unstorable(value) and await _rows(store) == before
            return
        stored = (await store.require(task_id)).payload
        assert _as_json(stored) == _as_json({"value": value})


@pytest.mark.parametrize("backend", BACKENDS)
@settings(max_examples=60, deadline=None, suppress_health_check=FIXTURE_REUSE)
@given(value=json_values)
@example(value=f"nul {NUL} inside")
@example(value={f"key{NUL}": 1})
@example(value=SURROGATE)
def test_every_json_value_round_trips_through_the_database_or_is_refused_as_bad_input(
    db_url: str, value: Any
) -> None:
    asyncio.run(_round_trip(db_url, value))
