"""The Tranco list on disk: one read-only SQLite file per list source that every process of the host shares.

Why a file under the data directory and not Redis: a lookup must cost no request, while 1M domains in Redis
would take tens of MB of its memory and a round trip per lookup (and the embedded mode has no Redis); in
each process's own memory a dict of them is ~170 MB per worker process. The SQLite file (~28 MB for 1M
domains, one B-tree keyed by domain) is opened read-only and ``immutable``: the OS page cache holds one copy
for every process of the host, each process adds only SQLite's small page cache (2 MB at most), opening takes
well under a millisecond and a lookup a few microseconds. A new list is built beside the old one and renamed
over it (``os.replace``), so a reader sees the old file or the new one, never half of one; processes that
hold the old file open keep reading it until they reopen. One process of the host builds at a time
(``host_lock``, an ``flock``).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import io
import os
import sqlite3
import zipfile
from collections.abc import AsyncIterator, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

CSV_NAME = "top-1m.csv"
MAX_CSV_BYTES = 256 * 1024 * 1024  # the real list is ~22 MB: anything far larger is not a Tranco list
MAX_ENTRIES = 2_000_000
LOCK_POLL = 0.5  # seconds between tries for the host lock held by another process


class ListError(Exception):
    """A downloaded list that cannot be used (not a zip, no CSV, no entries)."""


@dataclass(frozen=True, slots=True)
class ListInfo:
    list_id: str
    list_date: str  # YYYY-MM-DD
    fetched_at: float  # epoch seconds
    source: str  # the base URL it came from


class RankList:
    """An open list file: ``rank(domain)`` reads one row; ``identity`` tells whether the file was replaced."""

    def __init__(self, path: Path, connection: sqlite3.Connection, info: ListInfo, identity: tuple[int, int]):
        self.path = path
        self.info = info
        self.identity = identity
        self._connection = connection

    def rank(self, domain: str) -> int | None:
        row = self._connection.execute("SELECT rank FROM ranks WHERE domain = ?", (domain,)).fetchone()
        return int(row[0]) if row else None

    def size(self) -> int:
        return int(self._connection.execute("SELECT count(*) FROM ranks").fetchone()[0])

    def close(self) -> None:
        self._connection.close()


def list_path(directory: Path, base_url: str) -> Path:
    """The file of the list from ``base_url``: one per source, so a demo's synthetic list never stands in for
    the real one."""
    digest = hashlib.sha256(base_url.rstrip("/").encode()).hexdigest()[:12]
    return directory / f"tranco-{digest}.sqlite3"


def file_identity(path: Path) -> tuple[int, int] | None:
    """(inode, mtime) of ``path``: changes when another process renames a new list over it."""
    try:
        stat = path.stat()
    except OSError:
        return None
    return stat.st_ino, stat.st_mtime_ns


def open_list(path: Path) -> RankList | None:
    """The list at ``path`` opened read-only; None when there is none or it cannot be read."""
    identity = file_identity(path)
    if identity is None:
        return None
    try:
        connection = sqlite3.connect(path.absolute().as_uri() + "?mode=ro&immutable=1", uri=True,
                                     check_same_thread=False)
    except sqlite3.Error:
        return None
    try:
        meta = dict(connection.execute("SELECT key, value FROM meta").fetchall())
        info = ListInfo(list_id=meta["list_id"], list_date=meta["list_date"],
                        fetched_at=float(meta["fetched_at"]), source=meta["source"])
    except (sqlite3.Error, KeyError, ValueError):
        connection.close()
        return None
    return RankList(path, connection, info, identity)


def csv_entries(body: bytes) -> Iterator[tuple[str, int]]:
    """(domain, rank) of a downloaded list: a zip holding ``top-1m.csv``, or the CSV itself. Lines are
    ``rank,domain`` (``\\r\\n`` or ``\\n``); the rank column is read, never the line number."""
    if body[:4] == b"PK\x03\x04":
        yield from _zip_entries(body)
    else:
        yield from parse_csv(io.TextIOWrapper(io.BytesIO(body), encoding="utf-8", errors="replace", newline=""))


def _zip_entries(body: bytes) -> Iterator[tuple[str, int]]:
    try:
        archive = zipfile.ZipFile(io.BytesIO(body))
    except zipfile.BadZipFile as exc:
        raise ListError(f"the list download is not a usable zip: {exc}") from exc
    with archive:
        names = archive.namelist()
        name = CSV_NAME if CSV_NAME in names else next((n for n in names if n.endswith(".csv")), None)
        if name is None:
            raise ListError(f"the list zip holds no {CSV_NAME}")
        if archive.getinfo(name).file_size > MAX_CSV_BYTES:
            raise ListError(f"{name} in the list zip is larger than {MAX_CSV_BYTES} bytes")
        with archive.open(name) as member:
            yield from parse_csv(io.TextIOWrapper(member, encoding="utf-8", errors="replace", newline=""))


def parse_csv(lines: Iterable[str]) -> Iterator[tuple[str, int]]:
    """(domain, rank) of each ``rank,domain`` line; blank and malformed lines are skipped."""
    count = 0
    for line in lines:
        rank_text, _, domain = line.strip().partition(",")
        domain = domain.strip().rstrip(".").lower()
        if not domain or not rank_text.isdigit():
            continue
        count += 1
        if count > MAX_ENTRIES:
            raise ListError(f"the list has more than {MAX_ENTRIES} entries")
        yield domain, int(rank_text)


def build_list(path: Path, entries: Iterable[tuple[str, int]], info: ListInfo) -> int:
    """Writes the list to a file beside ``path`` and renames it over ``path``; returns its size. Blocking:
    run it in a thread. A domain listed twice keeps its first (best) rank."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.unlink(missing_ok=True)
    try:
        connection = sqlite3.connect(temporary)
        try:
            connection.execute("PRAGMA journal_mode=OFF")  # a half-built file is thrown away, never read
            connection.execute("PRAGMA synchronous=OFF")
            connection.execute("CREATE TABLE ranks (domain TEXT PRIMARY KEY, rank INTEGER NOT NULL) WITHOUT ROWID")
            connection.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
            connection.executemany("INSERT OR IGNORE INTO ranks VALUES (?, ?)", entries)
            size = int(connection.execute("SELECT count(*) FROM ranks").fetchone()[0])
            if size == 0:
                raise ListError("the list has no entries")
            connection.executemany("INSERT INTO meta VALUES (?, ?)", [
                ("list_id", info.list_id), ("list_date", info.list_date),
                ("fetched_at", repr(info.fetched_at)), ("source", info.source), ("size", str(size))])
            connection.commit()
        finally:
            connection.close()
        with open(temporary, "rb") as handle:
            os.fsync(handle.fileno())  # on disk before the rename makes it the list
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
    return size


@contextlib.asynccontextmanager
async def host_lock(directory: Path) -> AsyncIterator[None]:
    """Held by at most one process of the host (and one task of this process) at a time: the one refreshing
    the list. Waiting polls without blocking the event loop; the lock goes with its process if that dies."""
    handle = _lock_file(directory)
    try:
        while True:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                await asyncio.sleep(LOCK_POLL)  # a background refresh waiting, never a provider call
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
    finally:
        handle.close()


def _lock_file(directory: Path) -> BinaryIO:
    directory.mkdir(parents=True, exist_ok=True)
    return open(directory / ".tranco.lock", "a+b")  # held across awaits: host_lock closes it


def remove_stale(directory: Path, keep: Path, max_age: float, now: float, others: int = 4) -> None:
    """Deletes the list files of other sources (a demo's or a test's emulator, each on its own port) that were
    not refreshed for ``max_age`` seconds, and all but the ``others`` newest of them."""
    found: list[tuple[float, Path]] = []
    for path in directory.glob("tranco-*.sqlite3"):
        with contextlib.suppress(OSError):
            if path != keep:
                found.append((path.stat().st_mtime, path))
    found.sort(reverse=True)
    for rank, (mtime, path) in enumerate(found):
        if rank >= others or now - mtime > max_age:
            with contextlib.suppress(OSError):
                path.unlink()
