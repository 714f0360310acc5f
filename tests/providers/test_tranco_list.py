"""The Tranco list file: parsing the CSV, building the SQLite file, replacing it under readers, the host lock."""

from __future__ import annotations

import asyncio
import io
import os
import zipfile
from pathlib import Path

import pytest

from linkmeter.providers._tranco_list import (
    ListError,
    ListInfo,
    build_list,
    csv_entries,
    host_lock,
    list_path,
    open_list,
    parse_csv,
    remove_stale,
)

INFO = ListInfo(list_id="K25GW", list_date="2026-01-01", fetched_at=1_767_225_600.0, source="https://tranco-list.eu")


def zipped(text: str, name: str = "top-1m.csv") -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(name, text)
    return buffer.getvalue()


def test_lines_give_the_rank_column_not_the_line_number() -> None:
    lines = ["1,google.com\r\n", "\r\n", "rank,domain\r\n", "3,Facebook.COM.\n", "3,tie.example\n", "garbage\n",
             "7,gap.example"]

    assert list(parse_csv(lines)) == [("google.com", 1), ("facebook.com", 3), ("tie.example", 3),
                                      ("gap.example", 7)]


def test_a_zip_or_a_plain_csv_is_read() -> None:
    text = "1,a.com\r\n2,b.org\r\n"

    assert list(csv_entries(zipped(text))) == list(csv_entries(text.encode())) == [("a.com", 1), ("b.org", 2)]
    assert list(csv_entries(zipped(text, name="tranco_K25GW-1m.csv"))) == [("a.com", 1), ("b.org", 2)]


def test_a_zip_without_a_csv_is_refused() -> None:
    with pytest.raises(ListError):
        list(csv_entries(zipped("hello", name="README.txt")))


def test_a_built_list_answers_ranks_and_its_facts(tmp_path: Path) -> None:
    path = list_path(tmp_path, INFO.source)

    size = build_list(path, [("a.com", 1), ("b.org", 2), ("a.com", 9)], INFO)

    ranks = open_list(path)
    assert ranks is not None and size == ranks.size() == 2
    assert (ranks.rank("a.com"), ranks.rank("b.org"), ranks.rank("c.net")) == (1, 2, None)  # the first a.com wins
    assert ranks.info == INFO
    assert [entry.name for entry in tmp_path.iterdir()] == [path.name]  # no temporary file left behind


def test_a_reader_of_the_old_file_keeps_its_list_when_a_new_one_replaces_it(tmp_path: Path) -> None:
    path = list_path(tmp_path, INFO.source)
    build_list(path, [("a.com", 1)], INFO)
    old = open_list(path)

    build_list(path, [("a.com", 5), ("b.org", 6)], INFO)
    new = open_list(path)

    assert old is not None and new is not None and old.identity != new.identity
    assert old.rank("a.com") == 1 and old.rank("b.org") is None  # the whole old file, never half of the new one
    assert new.rank("a.com") == 5 and new.rank("b.org") == 6


def test_an_empty_list_leaves_the_old_file_alone(tmp_path: Path) -> None:
    path = list_path(tmp_path, INFO.source)
    build_list(path, [("a.com", 1)], INFO)

    with pytest.raises(ListError):
        build_list(path, iter(()), INFO)

    ranks = open_list(path)
    assert ranks is not None and ranks.rank("a.com") == 1
    assert len(list(tmp_path.iterdir())) == 1


def test_a_missing_or_unreadable_file_is_no_list(tmp_path: Path) -> None:
    broken = tmp_path / "tranco-broken.sqlite3"
    broken.write_bytes(b"not a database at all" * 100)

    assert open_list(tmp_path / "absent.sqlite3") is None
    assert open_list(broken) is None


def test_each_source_has_its_own_file(tmp_path: Path) -> None:
    live = list_path(tmp_path, "https://tranco-list.eu")

    assert live == list_path(tmp_path, "https://tranco-list.eu/")
    assert live != list_path(tmp_path, "http://127.0.0.1:8765/tranco")
    assert live.parent == tmp_path and live.name.startswith("tranco-") and live.suffix == ".sqlite3"


def test_files_of_other_sources_are_removed_once_stale_or_too_many(tmp_path: Path) -> None:
    keep, recent, stale = (tmp_path / f"tranco-{name}.sqlite3" for name in ("keep", "recent", "stale"))
    for path in (keep, recent, stale):
        path.write_bytes(b"x")
    now = stale.stat().st_mtime
    os.utime(stale, (now - 10_000, now - 10_000))
    os.utime(keep, (now - 10_000, now - 10_000))

    remove_stale(tmp_path, keep, max_age=3600, now=now)

    assert sorted(path.name for path in tmp_path.iterdir()) == ["tranco-keep.sqlite3", "tranco-recent.sqlite3"]
    for age in range(6):
        path = tmp_path / f"tranco-other{age}.sqlite3"
        path.write_bytes(b"x")
        os.utime(path, (now - age, now - age))
    remove_stale(tmp_path, keep, max_age=3600, now=now, others=3)
    assert sorted(path.name for path in tmp_path.iterdir()) == [
        "tranco-keep.sqlite3", "tranco-other0.sqlite3", "tranco-other1.sqlite3", "tranco-recent.sqlite3"]


async def test_the_host_lock_lets_one_holder_in_at_a_time(tmp_path: Path) -> None:
    order: list[str] = []

    async def hold(name: str) -> None:
        async with host_lock(tmp_path):
            order.append(f"{name} in")
            await asyncio.sleep(0.05)
            order.append(f"{name} out")

    await asyncio.gather(hold("a"), hold("b"))

    assert order in (["a in", "a out", "b in", "b out"], ["b in", "b out", "a in", "a out"])


def test_a_relative_directory_works(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    path = list_path(Path("data/tranco"), INFO.source)

    build_list(path, [("a.com", 1)], INFO)

    ranks = open_list(path)
    assert ranks is not None and ranks.rank("a.com") == 1
