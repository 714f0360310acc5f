"""`linkmeter bench --mode embedded`: submit-to-stored throughput of `linkmeter serve` (SQLite) through its API."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sqlite3
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp

from linkmeter.bench import processes

CHUNK = 500  # URLs per POST /api/v1/analyses (the default per-request limit is 1000)
POLL_SECONDS = 0.5


class EmbeddedBenchError(RuntimeError):
    """The server did not start or did not finish; the message says why (with the tail of its log)."""


@dataclass(slots=True)
class EmbeddedRun:
    seconds: float  # from the first POST to the last analysis stored
    submit_seconds: float  # how long submitting every chunk took
    url_seconds: list[float]  # per analysis: queued_at -> finished_at, as stored
    statuses: dict[str, int]
    cpu_seconds: float  # the server process, over the run


async def run_embedded(urls: list[str], *, emulator_url: str, concurrency: int, workdir: Path,
                       cpu_of: Callable[[int], float | None]) -> EmbeddedRun:
    """Start `linkmeter serve --emulator` on a fresh SQLite database in ``workdir``, submit ``urls`` through
    POST /api/v1/analyses in chunks, wait until every analysis is stored, read the timings from the
    database, stop the server."""
    data_dir = workdir / "embedded-data"
    log_path = workdir / "embedded-serve.log"
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env.update({
        "LINKMETER_DATA_DIR": str(data_dir),
        "LINKMETER_RUNNER_CONCURRENCY": str(concurrency),
        "LINKMETER_MAX_URLS_PER_REQUEST": str(max(CHUNK, int(env.get("LINKMETER_MAX_URLS_PER_REQUEST", "0") or 0))),
        "LINKMETER_LOG_LEVEL": env.get("LINKMETER_LOG_LEVEL", "WARNING"),
    })
    with log_path.open("w") as log:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "linkmeter", "serve", "--host", "127.0.0.1", "--port", "0",
            "--emulator", emulator_url, stdout=asyncio.subprocess.PIPE, stderr=log, env=env,
        )
    try:
        base = await processes.wait_until_serving(process, log_path, error=EmbeddedBenchError)
        connector = aiohttp.TCPConnector(limit=8)
        async with aiohttp.ClientSession(base_url=base, connector=connector) as session:
            cpu_before = cpu_of(process.pid) or 0.0
            began = time.time()
            batches = [await _submit(session, urls[i:i + CHUNK], log_path) for i in range(0, len(urls), CHUNK)]
            submitted = time.time()
            await _wait_until_stored(session, batches, process, log_path, budget=max(120.0, len(urls) * 0.1))
            cpu_after = cpu_of(process.pid) or cpu_before
    finally:
        await _stop(process)
    rows = _stored(data_dir / "linkmeter.sqlite3")
    last = max(finished for _, _, finished in rows)
    return EmbeddedRun(
        seconds=last - began,
        submit_seconds=submitted - began,
        url_seconds=[finished - queued for _, queued, finished in rows],
        statuses=dict(Counter(status for status, _, _ in rows)),
        cpu_seconds=cpu_after - cpu_before,
    )


async def _submit(session: aiohttp.ClientSession, urls: list[str], log_path: Path) -> int:
    async with session.post("/api/v1/analyses", json={"urls": urls}) as response:
        body: dict[str, Any] = await response.json(content_type=None)
        if response.status != 202 or body.get("invalid"):
            raise EmbeddedBenchError(f"POST /api/v1/analyses answered {response.status}: {str(body)[:500]} "
                                     f"{processes.tail(log_path)}")
        return int(body["batch_id"])


async def _wait_until_stored(session: aiohttp.ClientSession, batches: list[int],
                             process: asyncio.subprocess.Process, log_path: Path, budget: float) -> None:
    """Poll the oldest unfinished batch only (batches run oldest first): the polling must not cost the
    server CPU the measurement is about. The timings come from the database, not from when we notice."""
    waiting = sorted(batches)
    give_up = time.monotonic() + budget
    while waiting:
        async with session.get(f"/api/v1/batches/{waiting[0]}") as response:
            progress: dict[str, Any] = await response.json(content_type=None)
        if response.status == 200 and progress["finished"] >= progress["total"]:
            waiting.pop(0)
            continue
        if process.returncode is not None or time.monotonic() > give_up:
            raise EmbeddedBenchError(f"{len(waiting)} batches unfinished after {budget:.0f}s: "
                                     f"{processes.tail(log_path)}")
        await asyncio.sleep(POLL_SECONDS)


def _stored(database: Path) -> list[tuple[str, float, float]]:
    """(status, queued_at, finished_at) of every analysis, as Unix times, straight from the database."""
    with contextlib.closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True)) as connection:
        rows = connection.execute("SELECT status, queued_at, finished_at FROM links_analysis").fetchall()
    return [(status, _timestamp(queued), _timestamp(finished)) for status, queued, finished in rows]


def _timestamp(text: str) -> float:
    moment = datetime.fromisoformat(text)
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()  # Django stores UTC


async def _stop(process: asyncio.subprocess.Process) -> None:
    if process.returncode is None:
        process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(process.wait(), 30)
        except TimeoutError:
            process.kill()
            await process.wait()
