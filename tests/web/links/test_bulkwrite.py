"""JSON columns of the batched writes: what providers return is stored as JSON, whatever its Python shape."""

from __future__ import annotations

import json
import math

import pytest

from linkmeter.web.links.bulkwrite import json_value

pytestmark = pytest.mark.django_db


def stored(value: object) -> object:
    text = json_value(value)
    assert isinstance(text, str)  # SQLite: the text the base backend would send
    return json.loads(text)


def test_plain_json_is_stored_as_it_is() -> None:
    value = {"s": "é", "n": 1, "f": 2.5, "b": True, "none": None, "list": [1, {"x": []}]}
    assert stored(value) == value


def test_python_shapes_become_their_json_counterparts() -> None:
    assert stored({"t": (1, 2), "set": {3}, 4: "int key"}) == {"t": [1, 2], "set": [3], "4": "int key"}
    assert stored({"odd": complex(1, 2)}) == {"odd": "(1+2j)"}


def test_what_the_fast_encoder_refuses_is_still_stored() -> None:
    assert stored({"big": 2**70}) == {"big": 2**70}
    assert stored({(1, 2): "tuple key"}) == {"(1, 2)": "tuple key"}


def test_not_a_number_is_stored_as_null_never_as_invalid_json() -> None:
    assert stored({"n": math.nan, "i": math.inf}) == {"n": None, "i": None}


def test_none_is_sql_null() -> None:
    assert json_value(None) is None


def test_nul_characters_become_replacement_characters_and_a_literal_escape_stays() -> None:
    # PostgreSQL's jsonb refuses \u0000: one such answer would fail its whole chunk's write.
    assert stored({"t": "a\x00b", "k\x00": ["\x00"]}) == {"t": "a\ufffdb", "k\ufffd": ["\ufffd"]}
    assert stored({"t": "\\u0000 as text"}) == {"t": "\\u0000 as text"}
    assert stored({"big": 2**70, "t": "x\x00"}) == {"big": 2**70, "t": "x\ufffd"}  # the slow path too
