"""Reads an uploaded CSV (untrusted: size, row and encoding checks) and finds its URL column."""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass
from typing import IO

URL_HEADERS = ("url", "urls", "link", "links", "href", "address", "uri")  # by preference
LOOKS_LIKE_URL = re.compile(r"^(?:[a-z][a-z0-9+.-]*://|www\.)\S+$", re.IGNORECASE)
SAMPLE_ROWS = 200  # rows looked at to decide which column holds URLs
BINARY_SNIFF = 8192
DELIMITERS = ",;\t|"


class CsvError(ValueError):
    """An upload that cannot be used, with a message meant for the person who uploaded it."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True, slots=True)
class CsvTable:
    columns: list[str]  # one label per column: the header's names, else "column 1", "column 2", ...
    has_header: bool
    rows: list[tuple[int, list[str]]]  # (line number in the file, cells), data rows only
    url_column: int | None  # the column found automatically; None when the person must choose
    candidates: list[int]  # the columns that look like URLs

    def samples(self, column: int) -> str:
        """A first non-empty value of ``column``, to help someone choose."""
        return next((cells[column] for _, cells in self.rows if column < len(cells) and cells[column]), "")

    def values(self, column: int) -> list[tuple[int, str]]:
        """(line number, value) of every non-empty cell of ``column``."""
        found = []
        for line, cells in self.rows:
            value = cells[column].strip() if column < len(cells) else ""
            if value:
                found.append((line, value))
        return found


def read_upload(upload: IO[bytes], *, max_bytes: int) -> str:
    """The upload as text: refuses a file over ``max_bytes``, an empty one, a binary one and non-UTF-8."""
    data = upload.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise CsvError("too_large", f"the file is larger than the limit of {human_size(max_bytes)}")
    return decode(data)


def decode(data: bytes) -> str:
    if not data.strip():
        raise CsvError("empty", "the file is empty")
    if b"\x00" in data[:BINARY_SNIFF]:
        raise CsvError("binary", "the file is not text (it looks binary); upload a CSV or a text file")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise CsvError("not_utf8", f"the file is not UTF-8 text (invalid byte at position {exc.start}); "
                                   "save it as UTF-8 and upload it again") from exc
    if not text.strip():
        raise CsvError("empty", "the file is empty")
    return text


def parse(text: str, *, max_rows: int) -> CsvTable:
    """Split ``text`` into rows (delimiter sniffed), decide whether the first row is a header and which
    column holds the URLs. More than ``max_rows`` data rows is a CsvError."""
    records = _records(text, max_rows=max_rows + 1)  # + 1: a header row does not count
    if not records:
        raise CsvError("empty", "the file has no rows")
    width = max(len(cells) for _, cells in records)
    names = [cell.strip().lower() for cell in records[0][1]]
    named = next((names.index(h) for h in URL_HEADERS if h in names), None)
    first_has_url = any(LOOKS_LIKE_URL.match(cell.strip()) for cell in records[0][1])
    data_rows = records[1:] if named is not None or not first_has_url else records
    candidates = [c for c in range(width) if _looks_like_urls(data_rows[:SAMPLE_ROWS], c)]
    has_header = named is not None or (not first_has_url and len(records) > 1 and bool(candidates))
    rows = records[1:] if has_header else records
    if len(rows) > max_rows:
        raise CsvError("too_many_rows", f"the file has more than {max_rows} rows; the limit is {max_rows}")
    if not rows:
        raise CsvError("empty", "the file has a header but no rows")
    if named is not None:
        url_column: int | None = named
    elif len(candidates) == 1:
        url_column = candidates[0]
    elif not candidates and width == 1:
        url_column = 0  # a plain list: let the per-line errors say what is wrong with its lines
    else:
        url_column = None
    header = records[0][1] if has_header else []
    columns = [(header[c].strip() if c < len(header) and header[c].strip() else f"column {c + 1}")
               for c in range(width)]
    return CsvTable(columns=columns, has_header=has_header, rows=rows, url_column=url_column,
                    candidates=candidates)


def _records(text: str, *, max_rows: int) -> list[tuple[int, list[str]]]:
    sample = text[:BINARY_SNIFF]
    try:
        dialect: type[csv.Dialect] | csv.Dialect = csv.Sniffer().sniff(sample, delimiters=DELIMITERS)
    except csv.Error:
        dialect = csv.excel
    reader = csv.reader(io.StringIO(text, newline=""), dialect)
    records: list[tuple[int, list[str]]] = []
    start = 1
    try:
        for cells in reader:
            line, start = start, reader.line_num + 1
            if not any(cell.strip() for cell in cells):
                continue
            records.append((line, cells))
            if len(records) > max_rows:
                break
    except csv.Error as exc:
        raise CsvError("malformed", f"the CSV cannot be read at line {reader.line_num}: {exc}") from exc
    return records


def _looks_like_urls(rows: list[tuple[int, list[str]]], column: int) -> bool:
    values = [cells[column].strip() for _, cells in rows if column < len(cells) and cells[column].strip()]
    hits = sum(1 for value in values if LOOKS_LIKE_URL.match(value))
    return bool(values) and hits * 2 >= len(values)


def human_size(n: int) -> str:
    if n >= 1024 * 1024:
        return f"{n / (1024 * 1024):.1f} MB".replace(".0 MB", " MB")
    if n >= 1024:
        return f"{n / 1024:.0f} KB"
    return f"{n} bytes"
