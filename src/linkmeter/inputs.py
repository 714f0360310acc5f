"""Reads URL lists given by people: validates each line, keeps the good ones, reports the bad with line numbers."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from linkmeter.engine.urls import InvalidURL, parse_url


@dataclass(frozen=True, slots=True)
class InvalidLine:
    source: str  # "line 12" or "argument 2"
    text: str
    code: str
    message: str

    def as_dict(self) -> dict[str, str]:
        return {"where": self.source, "input": self.text, "code": self.code, "message": self.message}


@dataclass(slots=True)
class UrlList:
    urls: list[str]  # normalised, in input order, each once
    invalid: list[InvalidLine]
    duplicates: int = 0


def read_urls(items: Iterable[tuple[str, str]], *, max_length: int = 2048) -> UrlList:
    """``items`` are (where, text) pairs. Blank lines and ``#`` comments are ignored."""
    urls: list[str] = []
    seen: set[str] = set()
    invalid: list[InvalidLine] = []
    duplicates = 0
    for where, text in items:
        # A byte-order mark (files saved by some Windows editors) is not part of the first URL.
        stripped = text.lstrip("\ufeff").strip()
        if not stripped or stripped.startswith("#"):
            continue
        try:
            url = parse_url(stripped, max_length=max_length).url
        except InvalidURL as exc:
            shown = stripped if len(stripped) <= 120 else stripped[:117] + "..."
            invalid.append(InvalidLine(where, shown, exc.code, exc.message))
            continue
        if url in seen:
            duplicates += 1
            continue
        seen.add(url)
        urls.append(url)
    return UrlList(urls=urls, invalid=invalid, duplicates=duplicates)


def numbered_lines(lines: Iterable[str], label: str = "line") -> Iterable[tuple[str, str]]:
    for number, line in enumerate(lines, start=1):
        yield f"{label} {number}", line
