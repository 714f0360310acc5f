"""A Celery worker process's engine: one event loop in a background thread, one Engine (one HTTP pool, one
DNS client, the shared Redis state) on it; task threads hand their chunks to it and wait.

Task threads do every database call (the ORM is synchronous); the loop only runs the engine, so nothing
blocks it, and many chunks (each many URLs) are in flight at once. ``url_slots`` caps the URLs in flight in the
process whatever the chunks: with more chunk threads than the slots need, the next chunks are claimed and ready
while the last URLs of earlier ones finish, so the process keeps its slots full instead of idling through every
chunk's slowest URL.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import math
import os
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Coroutine, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from django.db import DatabaseError, close_old_connections

from linkmeter import loops
from linkmeter.assembly import build_engine
from linkmeter.emulator.client import EmulatorInfo
from linkmeter.engine.observe import logging_context
from linkmeter.engine.plan import PlanError
from linkmeter.engine.results import UrlResult
from linkmeter.engine.runner import Engine
from linkmeter.web import runtime
from linkmeter.web.jobs.slots import PrioritySlots
from linkmeter.web.links.services.queue import ClaimedWork, analysis_claim_ids, analysis_complete, analysis_fail
from linkmeter.web.runtime import Runtime

log = logging.getLogger(__name__)

STORE_TRIES = 5  # a finished chunk's write is tried this often (the database may be restarting)...
STORE_PAUSE = 1.0  # ...waiting this long, doubling, between tries; then the task's own retry takes over
START_TIMEOUT = 30.0


class ChunkTimeout(RuntimeError):
    """A chunk outlived the backstop (the engine's deadlines should have ended it long before)."""


@dataclass(frozen=True, slots=True)
class ChunkSummary:
    """What one chunk task did: its result in the chord (small, JSON)."""

    asked: int  # analysis ids in the chunk
    claimed: int  # run by this delivery (the others were final already, or running elsewhere)
    stored: int  # results written by this delivery
    failed: int  # analyses that could not run at all (e.g. an unknown provider selection)

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


class WorkerRuntime(Runtime):
    """A worker process's runtime: its loop thread and the engine on it. ``start()`` once (``worker.start``
    does, at start-up), then ``run_chunk`` from any number of task threads; ``close()`` when the process
    stops. Its dispatcher is the database queue (workers submit nothing)."""

    def __init__(self, environ: Mapping[str, str], *, emulator: EmulatorInfo | None = None,
                 relax_rate_limits: bool = False, chunk_time_limit: float = 180.0, url_slots: int | None = None,
                 waves: int = 1, engine_factory: Callable[[], Engine] | None = None) -> None:
        """``waves``: how many times over the claimed URLs (chunk threads x chunk size) can fill the slots:
        a claimed URL may wait for a slot while up to ``waves - 1`` others run in it before it, so its claim
        and the chunk's backstop allow that many more URL deadlines."""
        super().__init__()
        self._environ = dict(environ)
        self._emulator = emulator
        self._relax = relax_rate_limits
        self._factory = engine_factory
        self.url_slots = url_slots
        self.waves = max(1, waves) if url_slots else 1
        self._base_time_limit = chunk_time_limit
        self._slots: PrioritySlots | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    # -- the loop ----------------------------------------------------------------------------------------

    @property
    def running_engine(self) -> Engine:
        """The engine, once ``start()`` built it."""
        if self.engine is None:
            raise RuntimeError("the worker runtime is not started")
        return self.engine

    def start(self) -> None:
        """Start the loop thread and build the engine on it. Raises SettingsError / PlanError for bad
        settings."""
        if self._loop is not None:
            return
        loop = loops.new_event_loop()
        ready = threading.Event()

        def serve() -> None:
            asyncio.set_event_loop(loop)
            loop.call_soon(ready.set)
            loop.run_forever()

        self._thread = threading.Thread(target=serve, name="linkmeter-engine-loop", daemon=True)
        self._thread.start()
        ready.wait(START_TIMEOUT)
        self._loop = loop
        try:
            self.engine = self.call(self._build(), timeout=START_TIMEOUT)
        except BaseException:
            self._stop_loop()
            raise

    async def _build(self) -> Engine:
        # Built on the loop: the HTTP session, DNS client and Redis pool belong to it.
        from linkmeter.web import metrics

        engine = self._factory() if self._factory is not None else build_engine(
            self._environ, relax_rate_limits=self._relax, emulator=self._emulator)
        return metrics.attach(engine)  # before any narrowed() view, which copies the observer

    def call[T](self, coroutine: Coroutine[Any, Any, T], *, timeout: float | None = None) -> T:
        """Run ``coroutine`` on the loop from a task thread and wait for it (cancelled after ``timeout``:
        TimeoutError)."""
        if self._loop is None:
            coroutine.close()
            raise RuntimeError("the worker runtime is not started")
        future = asyncio.run_coroutine_threadsafe(coroutine, self._loop)
        try:
            return future.result(timeout)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise TimeoutError(f"gave up after {timeout}s") from None

    def close(self) -> None:
        """Close the engine (its HTTP pool and Redis client) and stop the loop thread."""
        if self._loop is None:
            return
        try:
            if self.engine is not None:
                self.call(self.engine.close(), timeout=10)
        except Exception:
            log.exception("closing the worker's engine failed")
        finally:
            self._stop_loop()

    def _stop_loop(self) -> None:
        loop, self._loop = self._loop, None
        if loop is None:
            return
        loop.call_soon_threadsafe(loop.stop)
        if self._thread is not None:
            self._thread.join(10)
        if not loop.is_running():
            loop.close()

    # -- chunks --------------------------------------------------------------------------------------------

    @property
    def chunk_time_limit(self) -> float:
        """The backstop for one chunk: the configured one plus the URL deadlines its URLs may wait for slots."""
        return self._base_time_limit + (self.waves - 1) * (self.engine.url_deadline if self.engine else 0.0)

    def run_chunk(self, analysis_ids: Sequence[int], *, takeover: bool = False) -> ChunkSummary:
        """Claim these analyses, run them concurrently on the loop, store the results (call from a task
        thread). Idempotent: final analyses are skipped and a provider result is written once.
        ``takeover``: also run analyses marked running (this chunk's previous delivery died with them)."""
        # A claimed URL may wait for its slot behind waves - 1 others (each ends by its URL deadline), so the
        # claim allows that many more deadlines before the watchdog takes it back.
        deadline = self.running_engine.url_deadline * self.waves
        claimed = analysis_claim_ids(analysis_ids=analysis_ids, deadline_seconds=deadline, takeover=takeover)
        if not claimed:
            return ChunkSummary(asked=len(analysis_ids), claimed=0, stored=0, failed=0)
        try:
            outcomes, failures = self.call(self._analyse(claimed), timeout=self.chunk_time_limit)
        except TimeoutError:
            raise ChunkTimeout(f"a chunk of {len(claimed)} analyses outlived its backstop of "
                               f"{self.chunk_time_limit:g}s; the watchdog re-queues them") from None
        stored = self._store(outcomes)
        failed = self._fail(failures)
        return ChunkSummary(asked=len(analysis_ids), claimed=len(claimed), stored=stored, failed=failed)

    async def _analyse(self, claimed: Sequence[ClaimedWork]) -> tuple[list[tuple[int, UrlResult]],
                                                                       list[tuple[int, str]]]:
        outcomes: list[tuple[int, UrlResult]] = []
        failures: list[tuple[int, str]] = []

        if self.url_slots and self._slots is None:
            self._slots = PrioritySlots(self.url_slots)  # used on the loop only
        slots = self._slots

        async def one(item: ClaimedWork) -> None:
            with logging_context(analysis_id=item.analysis_id, batch_id=item.batch_id, url=item.url):
                try:
                    async with slots.slot(item.priority) if slots else contextlib.nullcontext():
                        result = await self.running_engine.for_selection(item.providers).analyze(
                            item.url, priority=item.priority)
                except PlanError as exc:
                    failures.append((item.analysis_id, f"cannot run the providers asked for: {exc}"))
                except Exception as exc:  # the engine never raises for provider failures; a bug costs one
                    log.exception("analysis %d of %s failed unexpectedly", item.analysis_id, item.url)
                    failures.append((item.analysis_id, f"unexpected {type(exc).__name__}: {exc}"))
                else:
                    outcomes.append((item.analysis_id, result))

        await asyncio.gather(*(one(item) for item in claimed))
        return outcomes, failures

    def _store(self, outcomes: list[tuple[int, UrlResult]]) -> int:
        pause = STORE_PAUSE
        for attempt in range(1, STORE_TRIES + 1):
            try:
                return analysis_complete(outcomes=outcomes)
            except DatabaseError:
                close_old_connections()
                if attempt == STORE_TRIES:
                    raise
                log.warning("storing %d finished analyses failed (try %d of %d); trying again in %gs",
                            len(outcomes), attempt, STORE_TRIES, pause, exc_info=True)
                time.sleep(pause)
                pause *= 2
        return 0  # not reached

    def _fail(self, failures: list[tuple[int, str]]) -> int:
        by_reason: dict[str, list[int]] = defaultdict(list)
        for pk, reason in failures:
            by_reason[reason].append(pk)
        return sum(analysis_fail(analysis_ids=ids, reason=reason) for reason, ids in by_reason.items())


# -- the process's runtime ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class WorkerOptions:
    """How a worker process builds its runtime (`linkmeter worker` sets them from its command line); what is
    None comes from the environment and the Celery settings."""

    environ: Mapping[str, str] | None = None  # None: this process's environment
    emulator: EmulatorInfo | None = None  # `--emulator URL`: every provider points at it
    relax_rate_limits: bool = False
    chunk_time_limit: float | None = None  # None: CelerySettings.chunk_time_limit
    url_slots: int | None = None  # None: LINKMETER_WORKER_URLS
    chunk_threads: int = 1  # chunk tasks the process holds at once (`--concurrency`)


def start(options: WorkerOptions | None = None) -> WorkerRuntime:
    """Build this worker process's runtime, start it and install it (once, at start-up). Raises SettingsError
    / PlanError for bad settings."""
    from linkmeter.web.config.celery import celery_settings

    options = options or WorkerOptions()
    settings = celery_settings()
    slots = options.url_slots or settings.worker_urls
    started = WorkerRuntime(
        options.environ if options.environ is not None else os.environ,
        emulator=options.emulator,
        relax_rate_limits=options.relax_rate_limits,
        chunk_time_limit=options.chunk_time_limit or settings.chunk_time_limit,
        url_slots=slots,
        waves=math.ceil(options.chunk_threads * settings.chunk_size / slots),
    )
    started.start()
    started.spam_jobs = _send_spam_job
    runtime.install(started)
    from linkmeter.web.links import spamsource

    spamsource.install()  # the active spam model, refreshed without a restart
    return started


def _send_spam_job(job_id: int) -> None:
    from linkmeter.web.jobs.tasks import send_spam_job

    send_spam_job(job_id)


def current() -> WorkerRuntime:
    """This worker process's runtime (installed by ``start``). Raises RuntimeNotInstalled in another process."""
    installed = runtime.current()
    if not isinstance(installed, WorkerRuntime):
        raise runtime.RuntimeNotInstalled("this process is not a started linkmeter worker (worker.start())")
    return installed


def shutdown() -> None:
    """Close this process's worker runtime and uninstall it, if it was started."""
    installed = runtime.installed()
    if isinstance(installed, WorkerRuntime):
        from linkmeter.web.links import spamsource

        spamsource.uninstall()
        runtime.uninstall()
        installed.close()
