"""The refiller: one round calls the providers of deferred cells again, as many per provider as its rate lets
through in the round, highest priority first, and stores the answers in place (services/deferred.py).

The embedded runner runs rounds on its own loop (its database thread for the ORM: ``refill_round``); a Celery
worker runs the beat task's rounds from a task thread, the calls on its engine's loop
(``refill_rounds_blocking``).
A round waits for the provider's rate limit like any call, within its deadline (twice the interval): what
cannot get a slot or a budget stays deferred for the next round.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from linkmeter.engine.plan import PlanError
from linkmeter.engine.results import CallResult, CallStatus
from linkmeter.engine.runner import Engine
from linkmeter.web.links.services.deferred import (
    DeferredWork,
    Refilled,
    deferred_claim,
    deferred_expire,
    deferred_store,
    deferred_waiting,
)

log = logging.getLogger(__name__)

UNLIMITED_PER_ROUND = 50  # cells of a provider with no rate limit asked again per round


@dataclass(frozen=True, slots=True)
class RefillSettings:
    interval: float = 5.0  # LINKMETER_DEFER_INTERVAL: seconds between rounds when nothing is waiting
    max_age: float = 86400.0  # LINKMETER_DEFER_MAX_AGE: a deferred cell gives up after this long

    @property
    def deadline(self) -> float:
        """How long one round's calls may wait for their slots."""
        return 2 * self.interval

    @classmethod
    def from_django(cls) -> RefillSettings:
        from django.conf import settings

        return cls(interval=float(settings.LINKMETER["DEFER_INTERVAL_SECONDS"]),
                   max_age=float(settings.LINKMETER["DEFER_MAX_AGE_SECONDS"]))


@dataclass(slots=True)
class RoundReport:
    filled: int = 0
    waiting: int = 0
    settled: int = 0
    gave_up: int = 0
    claimed: int = 0
    batches: list[int] = field(default_factory=list)  # batches with no deferred cell left: tell their webhook

    def merge(self, other: RoundReport) -> None:
        self.filled += other.filled
        self.waiting += other.waiting
        self.settled += other.settled
        self.gave_up += other.gave_up
        self.claimed += other.claimed
        self.batches.extend(b for b in other.batches if b not in self.batches)

    def add(self, refilled: Refilled) -> None:
        self.filled += refilled.filled
        self.waiting += refilled.waiting
        self.settled += refilled.settled
        self.batches.extend(b for b in refilled.batches if b not in self.batches)


async def per_round(engine: Engine, waiting: dict[str, int], settings: RefillSettings) -> dict[str, int]:
    """How many cells of each provider to ask again this round: what its rate lets out in the round's
    deadline (its burst included), none while it is paused past the round (a 429's Retry-After)."""
    known = {p.name: p for p in engine.plan.known or engine.plan.providers}
    limits: dict[str, int] = {}
    for name, count in waiting.items():
        provider = known.get(name)
        if provider is None or count <= 0 or engine.disabled().get(name):
            continue
        if await engine.state.limiter.paused_for(name) > settings.deadline:
            continue
        policy = provider.policy
        room = (math.floor(policy.rate_per_sec * settings.deadline) + policy.burst if policy.rate_per_sec
                else UNLIMITED_PER_ROUND)
        limits[name] = max(1, min(count, room))
    return limits


async def call_again(engine: Engine, works: Sequence[DeferredWork], deadline: float) -> list[
        tuple[DeferredWork, dict[str, CallResult]]]:
    """Each cell's provider called again (with the indicators deriving from it), concurrently."""

    async def one(work: DeferredWork) -> tuple[DeferredWork, dict[str, CallResult]]:
        try:
            view = engine.for_selection(work.selection)
            return work, await view.refill(work.provider, work.signals, priority=work.priority, deadline=deadline)
        except PlanError as exc:
            return work, {work.provider: CallResult(work.provider, CallStatus.SKIPPED, message=str(exc))}

    return list(await asyncio.gather(*(one(work) for work in works)))


Database = Callable[..., Awaitable[Any]]  # runs a service with keyword arguments on the database thread


async def refill_round(engine: Engine, database: Database, settings: RefillSettings) -> RoundReport:
    """One round in a process that runs its engine on this loop (the embedded runner)."""
    report = RoundReport()
    expired: Refilled = await database(deferred_expire, max_age_seconds=settings.max_age)
    report.gave_up = expired.settled
    report.add(expired)
    limits = await per_round(engine, await database(deferred_waiting), settings)
    claims = await asyncio.gather(*(database(deferred_claim, provider=name, limit=n,
                                             lease_seconds=settings.deadline * 3) for name, n in limits.items()))
    works = [work for claimed in claims for work in claimed]
    report.claimed = len(works)
    if works:
        outcomes = await call_again(engine, works, settings.deadline)
        report.add(await database(deferred_store, outcomes=outcomes))
    return report


def refill_rounds_blocking(engine: Engine, run: Callable[..., Any], settings: RefillSettings,
                           clock: Callable[[], float] = time.monotonic) -> RoundReport:
    """Rounds from a thread that may use the database (a Celery task), for up to one interval: another round
    while the last one filled something (cells sharing an upstream call fill from its cache entry without a
    slot, so a round's count says little about what the rate allows). The calls run on the engine's loop
    through ``run(coroutine, timeout=)`` (``WorkerRuntime.call``)."""
    started = clock()
    expired = deferred_expire(max_age_seconds=settings.max_age)
    report = RoundReport(gave_up=expired.settled)
    report.add(expired)
    while True:
        one = _round_blocking(engine, run, settings)
        report.merge(one)
        if not one.claimed or not one.filled or clock() - started >= settings.interval:
            return report


def _round_blocking(engine: Engine, run: Callable[..., Any], settings: RefillSettings) -> RoundReport:
    report = RoundReport()
    limits = run(per_round(engine, deferred_waiting(), settings), timeout=30)
    works = [work for name, n in limits.items()
             for work in deferred_claim(provider=name, limit=n, lease_seconds=settings.deadline * 3)]
    report.claimed = len(works)
    if works:
        outcomes = run(call_again(engine, works, settings.deadline), timeout=settings.deadline + 30)
        report.add(deferred_store(outcomes=outcomes))
    return report
