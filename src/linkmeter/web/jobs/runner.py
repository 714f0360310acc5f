"""The embedded runner: claims queued analyses from the database, runs them on the engine, stores the results."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections import defaultdict
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import close_old_connections, connections

from linkmeter.engine.observe import logging_context
from linkmeter.engine.plan import PlanError
from linkmeter.engine.results import UrlResult
from linkmeter.engine.runner import Engine
from linkmeter.web import metrics
from linkmeter.web.jobs.refill import RefillSettings, refill_round
from linkmeter.web.links.selectors.workers import running_analysis_ids
from linkmeter.web.links.services.queue import (
    ClaimedWork,
    analysis_claim_next,
    analysis_complete,
    analysis_fail,
    analysis_recover,
    analysis_requeue,
)

log = logging.getLogger(__name__)

WRITE_TRIES = 3  # after that the watchdog re-queues what could not be stored


@dataclass(frozen=True, slots=True)
class RunnerSettings:
    concurrency: int = 100  # analyses in flight
    poll_interval: float = 2.0  # look for work queued by another process this often
    flush_interval: float = 0.25  # store finished analyses at least this often...
    flush_size: int = 200  # ...or as soon as this many are waiting
    watchdog_interval: float = 10.0
    watchdog_grace: float = 30.0  # past its deadline by this much, a running analysis is lost
    max_attempts: int = 2  # the watchdog re-queues a lost analysis until it was started this often
    # This share of the claimed analyses are the oldest queued whatever their priority: higher plans go
    # first, lower ones still progress (at least this share of the runner's throughput).
    fair_share: float = 0.2
    stop_grace: float = 5.0  # on stop, in-flight analyses get this long to finish
    refill: RefillSettings | None = None  # deferred cells are filled in the background (None: never)

    @classmethod
    def from_django(cls, **overrides: Any) -> RunnerSettings:
        limits = settings.LINKMETER
        refill = RefillSettings.from_django()
        values: dict[str, Any] = {"concurrency": int(limits["RUNNER_CONCURRENCY"]),
                                  "watchdog_grace": float(limits["WATCHDOG_GRACE_SECONDS"]),
                                  "refill": refill if refill.max_age > 0 else None}
        return cls(**{**values, **overrides})


@dataclass(slots=True)
class RunnerStats:
    claims: int = 0  # claim queries made
    claimed: int = 0
    stored: int = 0  # analyses written by this runner
    writes: int = 0  # batched writes (one transaction each)
    failed: int = 0  # analyses failed because they could not run at all
    resumed: int = 0  # analyses found running at start and re-queued
    refilled: int = 0  # deferred cells filled in the background


class InlineRunner:
    """Runs analyses in this process with bounded concurrency. Implements the Dispatcher protocol.

    The Django ORM runs on one dedicated thread (one database connection) so the event loop never waits
    on the database; finished analyses are written in batches.
    """

    def __init__(self, engine: Engine, runner_settings: RunnerSettings | None = None) -> None:
        self.engine = metrics.attach(engine)
        self.settings = runner_settings or RunnerSettings.from_django()
        self.stats = RunnerStats()
        self.ready = asyncio.Event()  # set once the restart-resume is done and claiming begins
        self._db = ThreadPoolExecutor(max_workers=1, thread_name_prefix="linkmeter-db")
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake = asyncio.Event()
        self._flush_now = asyncio.Event()
        self._stopping = False
        self._closing = False  # the flusher's last round
        self._more = True  # queued work may be waiting in the database
        self._running: dict[int, asyncio.Task[None]] = {}
        self._outcomes: list[tuple[int, UrlResult]] = []
        self._failures: list[tuple[int, str]] = []
        self._tries: dict[int, int] = {}
        self._unfinished: list[int] = []
        self._refill = max(1, self.settings.concurrency // 10)  # claim once this many slots are free
        self._max_backlog = max(4 * self.settings.flush_size, 2 * self.settings.concurrency)
        self._fair_credit = 0.0  # slots owed to the oldest queued analyses (fair_share of every claim)

    # -- the Dispatcher protocol ---------------------------------------------------------------------

    def enqueue(self, analysis_ids: Sequence[int], *, priority: int, batch_id: int | None = None) -> None:
        """Wake the runner: new analyses were committed (possibly from another thread)."""
        loop = self._loop
        if not analysis_ids or loop is None or loop.is_closed():
            return
        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile: the database keeps them queued
            loop.call_soon_threadsafe(self._wake_up)

    # -- running ---------------------------------------------------------------------------------------

    @property
    def in_flight(self) -> int:
        return len(self._running)

    def stop(self) -> None:
        """Stop claiming; run() then lets in-flight analyses finish (up to a grace), stores and returns."""
        self._stopping = True
        self._wake.set()

    async def database[T](self, function: Callable[..., T], /, **kwargs: Any) -> T:
        """Run ``function(**kwargs)`` on the runner's database thread."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._db, functools.partial(_guarded, function, kwargs))

    async def run(self) -> None:
        """Resume what a previous process left running, then run queued analyses until stop()."""
        if self._loop is not None:
            raise RuntimeError("an InlineRunner runs once")
        self._loop = asyncio.get_running_loop()
        helpers: list[asyncio.Task[None]] = []
        try:
            await self._resume()
            helpers = [asyncio.create_task(self._watchdog()), asyncio.create_task(self._flusher())]
            if self.settings.refill is not None:
                helpers.append(asyncio.create_task(self._refiller(self.settings.refill)))
            self.ready.set()
            await self._claim_loop()
        finally:
            await self._shutdown(helpers)

    async def _resume(self) -> None:
        orphans = await self.database(running_analysis_ids)
        if orphans:
            self.stats.resumed = await self.database(analysis_requeue, analysis_ids=orphans)
            log.info("re-queued %d analyses left running by a previous process", self.stats.resumed)

    async def _claim_loop(self) -> None:
        while not self._stopping:
            self._wake.clear()
            free = self.settings.concurrency - len(self._running)
            if self._more and free > 0 and len(self._outcomes) < self._max_backlog:
                claimed = await self._claim(free)
                self._more = len(claimed) == free
                for item in claimed:
                    self._start(item)
                continue
            try:
                async with asyncio.timeout(self.settings.poll_interval):
                    await self._wake.wait()
            except TimeoutError:
                self._more = True  # another process may have queued work without telling us

    async def _claim(self, limit: int) -> list[ClaimedWork]:
        self._fair_credit += limit * self.settings.fair_share
        oldest = int(self._fair_credit)
        try:
            claimed = await self.database(analysis_claim_next, limit=limit, deadline_seconds=self.engine.url_deadline,
                                          oldest=oldest)
        except Exception:
            log.exception("claiming analyses failed; trying again shortly")
            await asyncio.sleep(min(1.0, self.settings.poll_interval))
            return []
        self._fair_credit -= oldest
        self.stats.claims += 1
        self.stats.claimed += len(claimed)
        return claimed

    def _start(self, item: ClaimedWork) -> None:
        if item.analysis_id in self._running:
            return  # the watchdog re-queued it while it was still running here: its result will come
        task = asyncio.create_task(self._analyse(item), name=f"analysis-{item.analysis_id}")
        self._running[item.analysis_id] = task
        task.add_done_callback(functools.partial(self._done, item.analysis_id))

    def _done(self, pk: int, task: asyncio.Task[None]) -> None:
        self._running.pop(pk, None)
        if task.cancelled():
            self._unfinished.append(pk)
        elif self._more and self.settings.concurrency - len(self._running) >= self._refill:
            self._wake.set()

    async def _analyse(self, item: ClaimedWork) -> None:
        # Every log line of this analysis (engine and providers included) carries its ids.
        with logging_context(analysis_id=item.analysis_id, batch_id=item.batch_id, url=item.url):
            await self._analyse_in_context(item)

    async def _analyse_in_context(self, item: ClaimedWork) -> None:
        try:
            engine = self.engine.for_selection(item.providers)
            result = await engine.analyze(item.url, priority=item.priority)
        except PlanError as exc:
            self._failures.append((item.analysis_id, f"cannot run the providers asked for: {exc}"))
        except Exception as exc:  # the engine never raises for provider failures; a bug costs one analysis
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                raise asyncio.CancelledError from exc  # stopping: re-queued, not failed
            log.exception("analysis %d of %s failed unexpectedly", item.analysis_id, item.url)
            self._failures.append((item.analysis_id, f"unexpected {type(exc).__name__}: {exc}"))
        else:
            self._outcomes.append((item.analysis_id, result))
        if len(self._outcomes) + len(self._failures) >= self.settings.flush_size:
            self._flush_now.set()

    # -- storing ---------------------------------------------------------------------------------------

    async def _flusher(self) -> None:
        while not self._closing:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.settings.flush_interval):
                    await self._flush_now.wait()
            self._flush_now.clear()
            await self._flush()

    async def _flush(self) -> None:
        outcomes, self._outcomes = self._outcomes, []
        failures, self._failures = self._failures, []
        if outcomes:
            try:
                self.stats.stored += await self.database(analysis_complete, outcomes=outcomes)
                self.stats.writes += 1
            except Exception:
                log.exception("storing %d finished analyses failed", len(outcomes))
                self._retry_later(outcomes)
            else:
                for pk, _ in outcomes:
                    self._tries.pop(pk, None)
        if failures:
            by_reason: dict[str, list[int]] = defaultdict(list)
            for pk, reason in failures:
                by_reason[reason].append(pk)
            for reason, ids in by_reason.items():
                try:
                    self.stats.failed += await self.database(analysis_fail, analysis_ids=ids, reason=reason)
                except Exception:
                    log.exception("marking %d analyses failed did not work; the watchdog will", len(ids))
        if outcomes and self._more:
            self._wake.set()  # the backlog shrank: claiming may resume

    def _retry_later(self, outcomes: list[tuple[int, UrlResult]]) -> None:
        for pk, result in outcomes:
            tries = self._tries[pk] = self._tries.get(pk, 0) + 1
            if tries < WRITE_TRIES:
                self._outcomes.append((pk, result))
            else:
                self._tries.pop(pk, None)
                log.error("dropping the result of analysis %d after %d failed writes; the watchdog re-queues it",
                          pk, tries)

    async def _watchdog(self) -> None:
        while True:
            await asyncio.sleep(self.settings.watchdog_interval)
            try:
                recovered = await self.database(
                    analysis_recover, max_attempts=self.settings.max_attempts,
                    grace_seconds=self.settings.watchdog_grace)
            except Exception:
                log.exception("the watchdog could not check for lost analyses")
                continue
            requeued, failed = len(recovered.requeued), recovered.failed
            if requeued or failed:
                log.warning("watchdog: re-queued %d and failed %d analyses past their deadline", requeued, failed)
            if requeued:
                self._wake_up()

    async def _refiller(self, refill: RefillSettings) -> None:
        """Deferred cells filled in the background: a round as soon as the last one asked anything again
        (the providers' rate limits pace them), else every interval."""
        while True:
            try:
                report = await refill_round(self.engine, self.database, refill)
            except Exception:
                log.exception("refilling deferred cells failed; trying again shortly")
                report = None
            if report is not None:
                self.stats.refilled += report.filled
                if report.filled or report.gave_up:
                    log.info("deferred cells: %d filled, %d still waiting, %d settled otherwise, %d given up",
                             report.filled, report.waiting, report.settled, report.gave_up)
            await asyncio.sleep(0.05 if report is not None and report.claimed else refill.interval)

    def _wake_up(self) -> None:
        self._more = True
        self._wake.set()

    # -- stopping --------------------------------------------------------------------------------------

    async def _shutdown(self, helpers: list[asyncio.Task[None]]) -> None:
        self._stopping = True
        try:
            for helper in helpers[:1] + helpers[2:]:
                helper.cancel()  # the watchdog, the refiller; the flusher is never cut short in a write
            if self._running:
                _, late = await asyncio.wait(set(self._running.values()), timeout=self.settings.stop_grace)
                for task in late:
                    task.cancel()
                await asyncio.gather(*late, return_exceptions=True)
            self._closing = True
            self._flush_now.set()
            await asyncio.gather(*helpers, return_exceptions=True)
            for _ in range(WRITE_TRIES):
                await self._flush()
                if not self._outcomes:
                    break
            if self._unfinished:
                requeued = await self.database(analysis_requeue, analysis_ids=self._unfinished)
                log.info("re-queued %d analyses that did not finish before the stop", requeued)
        except Exception:
            log.exception("the runner did not stop cleanly; the next start resumes what is left")
        finally:
            with contextlib.suppress(Exception):
                await self.database(connections.close_all)
            self._db.shutdown(wait=True)


def _guarded[T](function: Callable[..., T], kwargs: dict[str, Any]) -> T:
    try:
        return function(**kwargs)
    except Exception:
        close_old_connections()  # a broken connection is replaced on the next call
        raise
