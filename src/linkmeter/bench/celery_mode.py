"""`linkmeter bench --mode celery`: submit-to-stored throughput of the Celery mode (`linkmeter serve` with N
`linkmeter worker` processes over RabbitMQ, PostgreSQL and Redis) through its API, and the workers' memory."""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import secrets
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from linkmeter.bench import processes
from linkmeter.bench.embedded import CHUNK, EmbeddedBenchError, _submit, _wait_until_stored
from linkmeter.bench.processes import Memory
from linkmeter.bench.services import Services, conninfo, delete_queues, delete_redis_keys, temporary_database

CHUNK_SIZE = 25  # analyses per chunk task (the worker's default, LINKMETER_CHUNK_SIZE)
START_SECONDS = 60.0
WAVES = 4  # claimed URLs per URL slot, as `linkmeter worker`'s default (2, 4, 6 measured: docs/benchmarks.md)


class CeleryBenchError(RuntimeError):
    """The service or the workers did not start or did not finish; the message says why."""


@dataclass(slots=True)
class CeleryRun:
    seconds: float  # from the first POST to the last analysis stored
    submit_seconds: float
    url_seconds: list[float]  # per analysis: queued_at -> finished_at, as stored
    statuses: dict[str, int]
    cpu_seconds: float  # the workers and the server, over the run
    worker_cpu_seconds: float
    threads_per_worker: int
    urls_per_worker: int  # LINKMETER_WORKER_URLS: URLs in flight per worker process
    memory: list[Memory] = field(default_factory=list)  # per worker process


def slots_for(concurrency: int, workers: int) -> int:
    """URLs in flight per worker (LINKMETER_WORKER_URLS) so that ``concurrency`` are in flight in all."""
    return max(1, math.ceil(concurrency / workers))


def threads_for(concurrency: int, workers: int, chunk_size: int = CHUNK_SIZE) -> int:
    """Chunk tasks each worker holds at once: four times what fills its slots (`linkmeter worker`'s default
    ratio), so the next chunks are claimed and waiting for slots while the last URLs of the running ones
    finish (the slots, not the threads, cap the URLs in flight)."""
    return WAVES * max(1, math.ceil(slots_for(concurrency, workers) / chunk_size))


async def run_celery(urls: list[str], *, emulator_url: str, services: Services, workers: int, concurrency: int,
                     workdir: Path) -> CeleryRun:
    """On a fresh database, queue and Redis namespace: migrate, start `linkmeter serve` and ``workers``
    `linkmeter worker` processes, submit ``urls`` through POST /api/v1/analyses, wait until every analysis
    is stored, read the timings from PostgreSQL, stop everything."""
    token = secrets.token_hex(4)
    queue, prefix = f"linkmeter-bench-{token}", f"linkmeter-bench-{token}:"
    threads, slots = threads_for(concurrency, workers), slots_for(concurrency, workers)
    with temporary_database(services.postgres) as database:
        env = {k: v for k, v in os.environ.items() if not k.startswith("LINKMETER_") and k != "DATABASE_URL"}
        env.update({
            "DATABASE_URL": database, "LINKMETER_BROKER_URL": services.broker, "LINKMETER_REDIS_URL": services.redis,
            "LINKMETER_REDIS_PREFIX": prefix, "LINKMETER_QUEUE": queue, "LINKMETER_CHUNK_SIZE": str(CHUNK_SIZE),
            "LINKMETER_WORKER_URLS": str(slots),
            "LINKMETER_DATA_DIR": str(workdir / "celery-data"), "LINKMETER_MAX_URLS_PER_REQUEST": str(CHUNK),
            "LINKMETER_LOG_LEVEL": "WARNING", "LINKMETER_LOG_FORMAT": "text",
            "LINKMETER_AUTH": "local",  # a broker implies keys; this run measures the pipeline, not authentication
        })
        await _migrate(env, workdir / "celery-migrate.log")
        started: list[asyncio.subprocess.Process] = []
        serve_log = workdir / "celery-serve.log"
        try:
            server = await processes.start(
                [sys.executable, "-m", "linkmeter", "serve", "--host", "127.0.0.1", "--port", "0", "--emulator",
                 emulator_url], env=env, log=serve_log, stdout=asyncio.subprocess.PIPE)
            started.append(server)
            base = await _serving(server, serve_log)
            logs = [workdir / f"celery-worker-{index}.log" for index in range(workers)]
            for index, log in enumerate(logs):
                started.append(await processes.start(
                    [sys.executable, "-m", "linkmeter", "worker", "--concurrency", str(threads), "--emulator",
                     emulator_url, "--loglevel", "warning", "--hostname", f"bench{index}-{token}@%h"],
                    env=env, log=log))
            worker_pids = [process.pid for process in started[1:]]
            await _wait_until_ready(env["LINKMETER_BROKER_URL"], started[1:], logs, workers)
            run = await _measure(urls, base, server, worker_pids, serve_log)
            memory = [processes.memory(pid) for pid in worker_pids]
        finally:
            for process in reversed(started):
                await processes.stop(process)
            await asyncio.to_thread(delete_queues, services.broker, [queue])
            await asyncio.to_thread(delete_redis_keys, services.redis, prefix + "*")
        rows = await asyncio.to_thread(_stored, database)
    began, submitted, cpu, worker_cpu = run
    return CeleryRun(
        seconds=max(finished for _, _, finished in rows) - began,
        submit_seconds=submitted - began,
        url_seconds=[finished - queued for _, queued, finished in rows],
        statuses=dict(Counter(status for status, _, _ in rows)),
        cpu_seconds=cpu,
        worker_cpu_seconds=worker_cpu,
        threads_per_worker=threads,
        urls_per_worker=slots,
        memory=memory,
    )


async def _measure(urls: list[str], base: str, server: asyncio.subprocess.Process, worker_pids: list[int],
                   serve_log: Path) -> tuple[float, float, float, float]:
    """(first POST, last POST answered, CPU of server and workers, CPU of the workers), as Unix times and
    seconds."""
    import aiohttp

    def cpu() -> tuple[float, float]:
        workers = sum(processes.cpu_seconds(pid) for pid in worker_pids)
        return workers + processes.cpu_seconds(server.pid), workers

    connector = aiohttp.TCPConnector(limit=8)
    try:
        async with aiohttp.ClientSession(base_url=base, connector=connector) as session:
            cpu_before, workers_before = cpu()
            began = time.time()
            batches = [await _submit(session, urls[i:i + CHUNK], serve_log) for i in range(0, len(urls), CHUNK)]
            submitted = time.time()
            await _wait_until_stored(session, batches, server, serve_log, budget=max(180.0, len(urls) * 0.1))
            cpu_after, workers_after = cpu()
    except EmbeddedBenchError as exc:
        raise CeleryBenchError(str(exc)) from exc
    return began, submitted, cpu_after - cpu_before, workers_after - workers_before


async def _migrate(env: dict[str, str], log: Path) -> None:
    process = await processes.start([sys.executable, "-m", "linkmeter", "migrate"], env=env, log=log)
    try:
        code = await asyncio.wait_for(process.wait(), 180)
    except TimeoutError:
        await processes.stop(process)
        raise CeleryBenchError(f"`linkmeter migrate` did not finish: {processes.tail(log)}") from None
    if code != 0:
        raise CeleryBenchError(f"`linkmeter migrate` failed: {processes.tail(log)}")


async def _serving(server: asyncio.subprocess.Process, log: Path) -> str:
    try:
        return await processes.wait_until_serving(server, log, error=EmbeddedBenchError)
    except EmbeddedBenchError as exc:
        raise CeleryBenchError(str(exc).replace("`linkmeter serve`", "`linkmeter serve` (Celery mode)")) from exc


async def _wait_until_ready(broker: str, workers: list[asyncio.subprocess.Process], logs: list[Path],
                            count: int) -> None:
    """Until every worker answers a ping over the broker: the measurement starts with all of them consuming."""
    from celery import Celery

    app = Celery("linkmeter-bench-ping", broker=broker, set_as_current=False)
    give_up = time.monotonic() + START_SECONDS
    try:
        while True:
            replies = await asyncio.to_thread(app.control.ping, timeout=1.0)
            if len(replies or []) >= count:
                return
            dead = [log for process, log in zip(workers, logs, strict=True) if process.returncode is not None]
            if dead or time.monotonic() > give_up:
                raise CeleryBenchError(f"the `linkmeter worker` processes did not start: "
                                       f"{processes.tail((dead or logs)[0])}")
    finally:
        app.close()


def _stored(database: str) -> list[tuple[str, float, float]]:
    """(status, queued_at, finished_at) of every analysis, as Unix times, straight from PostgreSQL."""
    import psycopg

    with contextlib.closing(psycopg.connect(conninfo(database))) as connection:
        rows = connection.execute("SELECT status, queued_at, finished_at FROM links_analysis").fetchall()
    return [(status, queued.timestamp(), finished.timestamp()) for status, queued, finished in rows]


def figures_of(run: CeleryRun) -> dict[str, Any]:
    """The run's own figures beside the common ones (URLs/s, p50/p99 ...), which the caller computes."""
    return {
        "submit_seconds": round(run.submit_seconds, 3),
        "statuses": run.statuses,
        "threads_per_worker": run.threads_per_worker,
        "urls_per_worker": run.urls_per_worker,
        "worker_cpu_seconds": round(run.worker_cpu_seconds, 2),
        "worker_rss_mb": [m.rss_mb for m in run.memory],
        "worker_hwm_mb": [m.hwm_mb for m in run.memory],
        "worker_pss_mb": [m.pss_mb for m in run.memory],
    }

