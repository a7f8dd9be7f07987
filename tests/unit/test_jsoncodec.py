"""The JSON codec of payload, result and error columns."""

from __future__ import annotations

import pytest

from taskstore.jsoncodec import dumps_json, loads_json


def test_an_empty_object_decodes_to_a_new_dict_each_time() -> None:
    first, second = loads_json("{}"), loads_json("{}")
    first["changed"] = True  # a handler may change its payload
    assert second == {}
    assert first is not second


@pytest.mark.parametrize(
    "value", [{}, {"a": [1, 2.5, None, "é"]}, {"nested": {}}, [], "text", 3, None, True]
)
def test_every_json_value_survives_the_round_trip(value: object) -> None:
    assert loads_json(dumps_json(value)) == value


def test_text_that_is_not_json_is_refused() -> None:
    with pytest.raises(ValueError):
        loads_json("{'single': 'quotes'}")
