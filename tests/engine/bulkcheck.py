"""Test helpers for bulk queries: URLs all in flight at once, and the same URLs through an engine with bulk
queries on and one with them off (``compare_bulk``).

For tests with real providers against the emulator, e.g.::

    def make(bulk: bool) -> Engine:
        return build_engine({**environ, "LINKMETER_BULK": "on" if bulk else "off"}, relax_rate_limits=True)

    async with asyncio.timeout(120):
        run = await compare_bulk(make, urls, concurrency=500)
    assert run.differences("safebrowsing") == {} and run.requests["safebrowsing"] <= 4
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from linkmeter.engine.results import SUCCESS, CallResult, UrlResult
from linkmeter.engine.runner import Engine


@dataclass(slots=True)
class BulkComparison:
    bulk: dict[str, UrlResult]  # by URL, bulk queries on
    one_by_one: dict[str, UrlResult]  # by URL, bulk queries off
    requests: dict[str, int]  # per batched provider: upstream requests the bulk run sent (retries counted)
    keys_sent: dict[str, int]  # per batched provider: keys those requests carried

    def differences(self, provider: str) -> dict[str, tuple[Any, Any]]:
        """URL -> (bulk, one by one) where ``provider``'s call differs: success or not (``ok`` and ``cached``
        alike: which call of a shared key went first is timing), status otherwise, message and signals."""
        found = {}
        for url, result in self.bulk.items():
            ours, theirs = _seen(result.providers[provider]), _seen(self.one_by_one[url].providers[provider])
            if ours != theirs:
                found[url] = (ours, theirs)
        return found


async def compare_bulk(make: Callable[[bool], Engine], targets: Sequence[str], *, concurrency: int,
                       after_bulk: Callable[[], None] | None = None) -> BulkComparison:
    """Run ``targets`` through ``make(True)`` then ``make(False)`` (each closed afterwards), ``concurrency`` URLs
    in flight; ``after_bulk`` runs between the two (e.g. to read an emulator's counts). Bound it with
    ``asyncio.timeout`` in the test."""
    runs: list[dict[str, UrlResult]] = []
    requests: dict[str, int] = {}
    keys_sent: dict[str, int] = {}
    for bulk in (True, False):
        engine = make(bulk)
        try:
            runs.append({r.url: r async for r in engine.analyze_many(targets, concurrency=concurrency)})
            if bulk and after_bulk is not None:
                after_bulk()
            if bulk:
                for provider in engine.plan.providers:
                    batcher = engine.calls.batcher(provider.name)
                    if batcher is not None:
                        requests[provider.name], keys_sent[provider.name] = batcher.requests, batcher.keys_sent
        finally:
            await engine.close()
    return BulkComparison(runs[0], runs[1], requests, keys_sent)


def urls(count: int, start: int = 0) -> list[str]:
    """``count`` URLs on distinct domains (site<i>.example)."""
    return [f"https://site{i}.example/page" for i in range(start, start + count)]


async def run_all(engine: Engine, targets: list[str], *, deadline: float | None = None) -> dict[str, UrlResult]:
    """Every URL in flight at once; results by URL."""
    async with asyncio.timeout(20):  # a batch nobody sends fails the test instead of hanging it
        return {r.url: r async for r in engine.analyze_many(targets, concurrency=len(targets), deadline=deadline)}


def calls(results: dict[str, UrlResult], provider: str) -> dict[str, CallResult]:
    """``provider``'s call of each URL."""
    return {url: result.providers[provider] for url, result in results.items()}


def _seen(call: CallResult) -> tuple[Any, ...]:
    succeeded = call.status in SUCCESS
    return (succeeded, None if succeeded else str(call.status), None if succeeded else call.message, call.signals)
