"""CSV cells a spreadsheet will not run: the one rule the CLI's CSV and the API's exports share (OWASP CSV
injection)."""

from __future__ import annotations

FORMULA_STARTS = frozenset("=+-@\t\r")  # a cell starting with one of these is read as a formula


def defused(text: str) -> str:
    """``text`` quoted with a leading ``'`` when it starts like a formula (scraped text may), else as it is."""
    return "'" + text if text[:1] in FORMULA_STARTS else text
