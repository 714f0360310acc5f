"""CSV cells: lists joined, booleans spelled, empty for missing, formulas defused."""

from __future__ import annotations

from typing import Any

import pytest

from linkmeter.web.api.exports import csv_cell


@pytest.mark.parametrize(("value", "cell"), [
    (None, ""),
    (True, "true"),
    (False, "false"),
    (42, 42),
    (1.5, 1.5),
    ("plain", "plain"),
    (["a", "b", None], "a;b;"),
    ({"b": 1, "a": 2}, '{"a": 2, "b": 1}'),
    ("=1+1", "'=1+1"),
    ("+1", "'+1"),
    ("-1", "'-1"),
    ("@SUM(A1)", "'@SUM(A1)"),
    ("\tx", "'\tx"),
    ("\rx", "'\rx"),
    (["=cmd", "ok"], "'=cmd;ok"),
])
def test_csv_cells(value: Any, cell: Any) -> None:
    assert csv_cell(value) == cell
