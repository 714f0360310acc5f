"""`linkmeter bench --mode chord-per-call`: runs the 2012 reconstruction on prefork Celery workers and measures
submit-to-stored throughput, per-URL times and the workers' memory."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from linkmeter.bench import processes
from linkmeter.bench.processes import Memory
from linkmeter.bench.services import Services, conninfo, delete_queues, delete_redis_keys, temporary_database

START_SECONDS = 60.0
POLL_SECONDS = 0.5


class ChordBenchError(RuntimeError):
    """The workers did not start or did not finish; the message says why (with the tail of their logs)."""


@dataclass(slots=True)
class ChordRun:
    seconds: float  # from the first submission to the last URL stored
    submit_seconds: float
    url_seconds: list[float]  # per URL: submitted -> stored
    statuses: dict[str, int]
    requests: int  # upstream HTTP requests and DNS queries
    cpu_seconds: float  # every worker process, over the run
    memory: list[Memory] = field(default_factory=list)  # per worker (main process and its pool)


async def run_chord_per_call(urls: list[str], *, environ: dict[str, str], services: Services, workers: int,
                             processes_per_worker: int, workdir: Path) -> ChordRun:
    """Start ``workers`` prefork workers (``processes_per_worker`` each) on a fresh database and queue,
    submit every URL as the 2012 web view did, wait until every URL is stored, stop the workers."""
    from linkmeter.bench import chord_per_call

    token = secrets.token_hex(4)
    queue = f"linkmeter-bench-chord-{token}"
    prefix = f"linkmeter-bench-chord-{token}:"
    with temporary_database(services.postgres) as database:
        import psycopg

        with psycopg.connect(conninfo(database), autocommit=True) as connection:
            connection.execute(chord_per_call.TABLE)
        env = {**environ, chord_per_call.ENV_BROKER: services.broker, chord_per_call.ENV_BACKEND: services.redis,
               chord_per_call.ENV_QUEUE: queue, chord_per_call.ENV_DATABASE: conninfo(database),
               chord_per_call.ENV_PREFIX: prefix}
        chord_per_call.configure(env)
        logs = [workdir / f"chord-worker-{index}.log" for index in range(workers)]
        started: list[asyncio.subprocess.Process] = []
        try:
            for index, log in enumerate(logs):
                started.append(await processes.start(
                    [sys.executable, "-m", "celery", "-A", "linkmeter.bench.chord_per_call", "worker",
                     "--pool", "prefork", "--concurrency", str(processes_per_worker), "--queues", queue,
                     "--hostname", f"chord{index}-{token}@%h", "--loglevel", "WARNING",
                     "--without-gossip", "--without-mingle"],
                    env=env, log=log))
            await _wait_until_ready(started, logs, workers)
            cpu_before = sum(processes.cpu_seconds(p.pid) for p in started)
            began = time.time()
            await asyncio.to_thread(_submit_all, urls)
            submitted = time.time()
            await _wait_until_stored(database, len(urls), started, logs, budget=max(300.0, len(urls) * 0.5))
            cpu_after = sum(processes.cpu_seconds(p.pid) for p in started)
            memory = [processes.memory(p.pid) for p in started]
        finally:
            for process in started:
                await processes.stop(process)
            await asyncio.to_thread(delete_queues, services.broker, [queue])
            await asyncio.to_thread(delete_redis_keys, services.redis, prefix + "*")
        rows = _stored(database)
    return ChordRun(
        seconds=max(finished for _, _, finished, _ in rows) - began,
        submit_seconds=submitted - began,
        url_seconds=[finished - queued for _, queued, finished, _ in rows],
        statuses=dict(Counter(status for status, _, _, _ in rows)),
        requests=sum(requests for _, _, _, requests in rows),
        cpu_seconds=cpu_after - cpu_before,
        memory=memory,
    )


def _submit_all(urls: list[str]) -> None:
    from linkmeter.bench.chord_per_call import submit

    for url_id, url in enumerate(urls):
        submit(url_id, url)


async def _wait_until_ready(started: list[asyncio.subprocess.Process], logs: list[Path], workers: int) -> None:
    from linkmeter.bench.chord_per_call import app

    give_up = time.monotonic() + START_SECONDS
    while True:
        replies = await asyncio.to_thread(app.control.ping, timeout=1.0)
        if len(replies or []) >= workers:
            return
        dead = [log for process, log in zip(started, logs, strict=True) if process.returncode is not None]
        if dead or time.monotonic() > give_up:
            raise ChordBenchError(f"the chord-per-call workers did not start: {processes.tail((dead or logs)[0])}")


async def _wait_until_stored(database: str, total: int, started: list[asyncio.subprocess.Process],
                             logs: list[Path], budget: float) -> None:
    import psycopg

    give_up = time.monotonic() + budget
    async with await psycopg.AsyncConnection.connect(conninfo(database), autocommit=True) as connection:
        while True:
            cursor = await connection.execute("SELECT count(*) FROM chord_result")
            row = await cursor.fetchone()
            if row is not None and row[0] >= total:
                return
            dead = [log for process, log in zip(started, logs, strict=True) if process.returncode is not None]
            if dead or time.monotonic() > give_up:
                stored = row[0] if row else 0
                raise ChordBenchError(f"{stored} of {total} URLs stored after {budget:.0f}s"
                                      f"{' (a worker exited)' if dead else ''}: {processes.tail((dead or logs)[0])}")
            await asyncio.sleep(POLL_SECONDS)


def _stored(database: str) -> list[tuple[str, float, float, int]]:
    import psycopg

    with contextlib.closing(psycopg.connect(conninfo(database))) as connection:
        rows: list[tuple[str, float, float, int]] = connection.execute(
            "SELECT status, submitted_at, finished_at, requests FROM chord_result").fetchall()
    return rows


def figures_of(run: ChordRun) -> dict[str, Any]:
    """The run's own figures beside the common ones (URLs/s, p50/p99 ...), which the caller computes."""
    return {
        "submit_seconds": round(run.submit_seconds, 3),
        "statuses": run.statuses,
        "upstream_requests": run.requests,
        "worker_rss_mb": [m.rss_mb for m in run.memory],
        "worker_hwm_mb": [m.hwm_mb for m in run.memory],
        "worker_pss_mb": [m.pss_mb for m in run.memory],
        "worker_processes": [m.processes for m in run.memory],
    }
