"""Bulk queries with real providers against the emulator: many URLs in flight share few upstream requests,
with the same results as one call per key, and a failed or hanging request costs only its own keys."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from linkmeter.assembly import build_engine
from linkmeter.emulator.apis import safebrowsing as safebrowsing_api
from linkmeter.emulator.parts import api_app
from linkmeter.emulator.server import RunningEmulator
from linkmeter.emulator.world import World
from linkmeter.engine.results import SUCCESS, CallStatus
from linkmeter.engine.runner import Engine
from tests.engine.bulkcheck import compare_bulk, urls

URLS = 500
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
ServerFactory = Callable[..., Awaitable[Any]]


async def test_500_urls_on_distinct_domains_make_a_few_requests_with_the_same_results(
        emulator: RunningEmulator) -> None:
    targets = urls(URLS)

    def make(bulk: bool) -> Engine:
        return build_engine({"LINKMETER_BULK": "on" if bulk else "off"}, select=["safebrowsing", "openpagerank"],
                            relax_rate_limits=True, emulator=emulator.info())

    before = dict(emulator.request_counts)
    after: dict[str, int] = {}
    async with asyncio.timeout(120):
        run = await compare_bulk(make, targets, concurrency=URLS, after_bulk=lambda: after.update(
            emulator.request_counts))
    # Counted by the emulator: what reached the upstream during the bulk run (the one-by-one run sends one request
    # per URL and more when a loaded machine makes some time out and be retried).
    sent = {name: after.get(name, 0) - before.get(name, 0) for name in run.requests}
    assert sent["safebrowsing"] <= 4
    assert sent["openpagerank"] <= 8
    assert run.requests == sent
    for provider in ("safebrowsing", "openpagerank"):
        assert run.differences(provider) == {}, provider
        assert all(result.providers[provider].status in SUCCESS for result in run.bulk.values()), provider


async def failing_first_request(aiohttp_server: ServerFactory, fail: Handler) -> tuple[str, list[int]]:
    """The emulated Safe Browsing API whose first threatMatches:find request is answered by ``fail``; its base
    URL and the number of entries each request carried."""
    entries: list[int] = []

    @web.middleware
    async def first_fails(request: web.Request, handler: Handler) -> web.StreamResponse:
        body = await request.json()
        entries.append(len(body["threatInfo"]["threatEntries"]))
        return await (fail(request) if len(entries) == 1 else handler(request))

    root = web.Application()
    app = api_app(safebrowsing_api, World(0))
    app.middlewares.append(first_fails)
    root.add_subapp("/safebrowsing", app)
    server = await aiohttp_server(root)
    return str(server.make_url("/safebrowsing")), entries


def safebrowsing_engine(base_url: str, **overrides: str) -> Engine:
    return build_engine({"LINKMETER_SAFEBROWSING_BASE_URL": base_url, "LINKMETER_FETCH_ALLOW": "127.0.0.0/8",
                         "LINKMETER_SAFEBROWSING_API_KEY": safebrowsing_api.DEMO_KEY,
                         "LINKMETER_SAFEBROWSING_RETRIES": "0", **overrides},
                        select=["safebrowsing"], relax_rate_limits=True)


async def run(engine: Engine) -> dict[str, Any]:
    try:
        async with asyncio.timeout(60):
            return {r.url: r.providers["safebrowsing"] async for r in engine.analyze_many(urls(URLS), concurrency=URLS)}
    finally:
        await engine.close()


async def test_a_5xx_on_one_batched_request_fails_just_its_keys(aiohttp_server: ServerFactory) -> None:
    async def unavailable(_request: web.Request) -> web.StreamResponse:
        return safebrowsing_api.error_response(503)

    base_url, entries = await failing_first_request(aiohttp_server, unavailable)
    calls = await run(safebrowsing_engine(base_url))
    failed = [call for call in calls.values() if call.status is CallStatus.ERROR]
    assert len(entries) >= 2 and len(failed) == entries[0]  # the keys of the failed request, and no others
    assert len({call.message for call in failed}) == 1 and "503" in failed[0].message
    assert sum(call.status in SUCCESS for call in calls.values()) == URLS - entries[0]


async def test_a_hanging_batched_request_costs_only_its_keys_cells_within_their_timeout(
        aiohttp_server: ServerFactory) -> None:
    async def hang(_request: web.Request) -> web.StreamResponse:
        await asyncio.sleep(3600)
        raise AssertionError("unreachable")

    base_url, entries = await failing_first_request(aiohttp_server, hang)
    started = time.monotonic()
    calls = await run(safebrowsing_engine(base_url, LINKMETER_SAFEBROWSING_TIMEOUT="1"))
    elapsed = time.monotonic() - started
    timed_out = [call for call in calls.values() if call.status is CallStatus.TIMEOUT]
    assert len(entries) >= 2 and len(timed_out) == entries[0]
    assert sum(call.status in SUCCESS for call in calls.values()) == URLS - entries[0]
    assert all(call.latency_ms < 5_000 for call in timed_out)  # the 1 s timeout, plus the linger and a busy machine
    assert elapsed < 30
