"""The Tranco provider against the emulated list and rank API: one download a day, shared, and no request per lookup."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from linkmeter.emulator.apis import tranco as tranco_api
from linkmeter.emulator.parts import api_app
from linkmeter.emulator.world import World
from linkmeter.engine.dns import DnsClient
from linkmeter.engine.http import HttpClient
from linkmeter.engine.provider import CallContext, Collected, ProviderConfig, ProviderError
from linkmeter.engine.settings import EngineSettings
from linkmeter.providers.tranco import TrancoProvider, parse_ranks

SEED = 6
NOW = datetime(2026, 3, 10, 12, tzinfo=UTC).timestamp()
LIST_DATE = "2026-03-09"  # yesterday, by the provider's clock
API_DATE = "2025-12-31"  # the rank API's newest entry, by the emulator's calendar
ServerFactory = Callable[[web.Application], Awaitable[TestServer]]
Failure = Callable[[web.Request], int | None]


@dataclass
class Upstream:
    """The emulated Tranco behind a recorder; ``failure`` may answer a request with a bare status instead."""

    base: str = ""
    paths: list[str] = field(default_factory=list)
    failure: Failure = lambda request: None

    def count(self, prefix: str) -> int:
        return sum(path.startswith(prefix) for path in self.paths)


@dataclass
class Clock:
    wall: float = NOW
    mono: float = 1000.0


@pytest.fixture
async def upstream(aiohttp_server: ServerFactory) -> Upstream:
    recorded = Upstream()

    @web.middleware
    async def record(request: web.Request, handler: Any) -> web.StreamResponse:
        recorded.paths.append(request.path.removeprefix("/tranco"))
        status = recorded.failure(request)
        return web.Response(status=status, text="refused") if status else await handler(request)

    root = web.Application(middlewares=[record])
    root.add_subapp("/tranco", api_app(tranco_api, World(SEED)))
    recorded.base = str((await aiohttp_server(root)).make_url("/tranco"))
    return recorded


@pytest.fixture
def clock() -> Clock:
    return Clock()


def make(upstream: Upstream, clock: Clock, directory: Path | None) -> TrancoProvider:
    config = ProviderConfig(base_url=upstream.base, data_dir=str(directory) if directory else None)
    return TrancoProvider(config, clock=lambda: clock.wall, monotonic=lambda: clock.mono)


async def lookup(provider: TrancoProvider, http: HttpClient, domain: str) -> Collected:
    ctx = CallContext(http=http, dns=DnsClient([("127.0.0.1", 9)]), config=provider.config)
    return await provider.collect(ctx, {"domain": domain})


def ranked_domain(index: int = 50) -> tuple[int, str]:
    return tranco_api.ranked(SEED)[index]


def test_the_reference_rank_api_answers() -> None:
    ranked = {"domain": "example.com", "ranks": [{"date": "2024-01-14", "rank": 519},
                                                 {"date": "2024-01-15", "rank": 512}]}

    assert parse_ranks(ranked) == {"tranco.rank": 512, "tranco.ranked": True, "tranco.list_date": "2024-01-15"}
    assert parse_ranks({"domain": "x.example", "ranks": []}) == {"tranco.rank": None, "tranco.ranked": False,
                                                                 "tranco.list_date": None}
    with pytest.raises(ProviderError):
        parse_ranks({"detail": "Not found"})


async def test_the_first_call_asks_the_rank_api_while_the_list_downloads(
    upstream: Upstream, clock: Clock, http: HttpClient, tmp_path: Path
) -> None:
    rank, domain = ranked_domain()
    provider = make(upstream, clock, tmp_path)

    first = await lookup(provider, http, domain)
    await provider.wait_refresh()

    assert first.signals == {"tranco.rank": rank, "tranco.ranked": True, "tranco.list_date": API_DATE}
    assert first.ttl is None and first.raw["source"] == "rank api"  # cached for the policy's day
    assert upstream.count("/api/ranks/domain/") == 1
    assert upstream.count("/daily_list_id") == 1 and upstream.count("/download_daily/") == 1
    assert provider.list_file(provider.config) in list((tmp_path / "tranco").iterdir())


async def test_lookups_in_the_list_cost_no_request_and_agree_with_the_world(
    upstream: Upstream, clock: Clock, http: HttpClient, tmp_path: Path
) -> None:
    provider = make(upstream, clock, tmp_path)
    await lookup(provider, http, "site1.com")
    await provider.wait_refresh()
    before = len(upstream.paths)
    world = World(SEED)

    for n in range(300):
        domain = f"site{n}.{('com', 'org', 'net')[n % 3]}"
        result = await lookup(provider, http, f"www.{domain}")
        rank = world.domain(domain).rank
        assert result.signals == {"tranco.rank": rank, "tranco.ranked": rank is not None,
                                  "tranco.list_date": LIST_DATE}, domain
        assert result.ttl == 0  # the list is the cache: nothing for the engine to keep

    assert len(upstream.paths) == before


async def test_calls_at_first_start_make_one_rank_api_request_and_wait_for_the_list(
    upstream: Upstream, clock: Clock, http: HttpClient, tmp_path: Path
) -> None:
    provider = make(upstream, clock, tmp_path)
    names = [domain for _, domain in tranco_api.ranked(SEED)[:30]]

    results = await asyncio.gather(*(lookup(provider, http, name) for name in names))

    assert upstream.count("/api/ranks/domain/") == 1 and upstream.count("/download_daily/") == 1
    assert sorted(r.signals["tranco.list_date"] for r in results) == [API_DATE] + [LIST_DATE] * 29
    assert [r.signals["tranco.rank"] for r in results] == [rank for rank, _ in tranco_api.ranked(SEED)[:30]]


async def test_another_process_reads_the_same_file_without_any_request(
    upstream: Upstream, clock: Clock, http: HttpClient, tmp_path: Path
) -> None:
    first = make(upstream, clock, tmp_path)
    await lookup(first, http, "site1.com")
    await first.wait_refresh()
    before = len(upstream.paths)
    rank, domain = ranked_domain(7)

    result = await lookup(make(upstream, clock, tmp_path), http, domain)

    assert result.signals == {"tranco.rank": rank, "tranco.ranked": True, "tranco.list_date": LIST_DATE}
    assert len(upstream.paths) == before


async def test_two_processes_starting_together_download_once(
    upstream: Upstream, clock: Clock, http: HttpClient, tmp_path: Path
) -> None:
    a, b = make(upstream, clock, tmp_path), make(upstream, clock, tmp_path)

    await asyncio.gather(lookup(a, http, "site1.com"), lookup(b, http, "site2.com"))
    await asyncio.gather(a.wait_refresh(), b.wait_refresh())

    assert upstream.count("/download_daily/") == 1
    assert (await lookup(b, http, "site3.com")).signals["tranco.list_date"] == LIST_DATE


async def test_a_day_old_list_is_replaced_in_the_background_and_answers_meanwhile(
    upstream: Upstream, clock: Clock, http: HttpClient, tmp_path: Path
) -> None:
    provider = make(upstream, clock, tmp_path)
    await lookup(provider, http, "site1.com")
    await provider.wait_refresh()
    clock.wall += 25 * 3600
    clock.mono += 25 * 3600

    during = await lookup(provider, http, "site2.com")  # answered from the old list, not after the download
    await provider.wait_refresh()
    after = await lookup(provider, http, "site2.com")

    assert during.signals["tranco.list_date"] == LIST_DATE
    assert after.signals["tranco.list_date"] == "2026-03-10"
    assert upstream.count("/download_daily/") == 2


async def test_a_failed_refresh_keeps_the_old_list_and_says_so(
    upstream: Upstream, clock: Clock, http: HttpClient, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    provider = make(upstream, clock, tmp_path)
    await lookup(provider, http, "site1.com")
    await provider.wait_refresh()
    clock.wall += 25 * 3600
    clock.mono += 25 * 3600
    upstream.failure = lambda request: None if "/api/ranks/" in request.path else 503  # the list is down

    with caplog.at_level(logging.WARNING, logger="linkmeter.providers.tranco"):
        await lookup(provider, http, "site2.com")
        await provider.wait_refresh()
    result = await lookup(provider, http, "site2.com")
    tries = upstream.count("/daily_list_id")
    await lookup(provider, http, "site3.com")

    assert result.signals["tranco.list_date"] == LIST_DATE
    assert "refreshing the list failed" in result.raw["note"] and "HTTP 503" in result.raw["note"]
    assert any(f"keeping the list of {LIST_DATE}" in record.getMessage() for record in caplog.records)
    assert upstream.count("/daily_list_id") == tries  # not retried on every call


async def test_when_the_list_cannot_be_had_one_call_a_second_asks_the_rank_api_and_others_err(
    upstream: Upstream, clock: Clock, http: HttpClient, tmp_path: Path
) -> None:
    upstream.failure = lambda request: 503 if request.path.endswith("/daily_list_id") else None
    provider = make(upstream, clock, tmp_path)
    rank, domain = ranked_domain()

    first = await lookup(provider, http, domain)
    with pytest.raises(ProviderError) as caught:
        await lookup(provider, http, domain)
    clock.mono += 1.0
    later = await lookup(provider, http, domain)

    assert first.signals["tranco.rank"] == later.signals["tranco.rank"] == rank
    # The list's upstream failed: an error (retried once the rank API is free again), not a rate limit.
    assert caught.value.retryable and not caught.value.rate_limited
    assert 0 < (caught.value.retry_after or 0) <= 1.0
    assert "no Tranco list (" in caught.value.message and "HTTP 503" in caught.value.message
    assert upstream.count("/api/ranks/domain/") == 2


async def test_a_refused_zip_falls_back_to_the_csv(
    upstream: Upstream, clock: Clock, http: HttpClient, tmp_path: Path
) -> None:
    upstream.failure = lambda request: 403 if "/download_daily/" in request.path else None
    provider = make(upstream, clock, tmp_path)
    rank, domain = ranked_domain(3)

    await lookup(provider, http, "site1.com")
    await provider.wait_refresh()

    assert upstream.count("/download/") == 1 and upstream.paths[-1].endswith("/1000000")
    assert (await lookup(provider, http, domain)).signals == {"tranco.rank": rank, "tranco.ranked": True,
                                                              "tranco.list_date": LIST_DATE}


async def test_without_an_id_for_yesterday_the_day_before_is_taken(
    upstream: Upstream, clock: Clock, http: HttpClient, tmp_path: Path
) -> None:
    upstream.failure = lambda request: 404 if request.query.get("date") == LIST_DATE else None
    provider = make(upstream, clock, tmp_path)

    await lookup(provider, http, "site1.com")
    await provider.wait_refresh()

    assert (await lookup(provider, http, "site1.com")).signals["tranco.list_date"] == "2026-03-08"


async def test_a_list_id_that_is_not_an_id_is_never_put_in_a_url(
    aiohttp_server: ServerFactory, clock: Clock, http: HttpClient, tmp_path: Path
) -> None:
    paths: list[str] = []

    async def handler(request: web.Request) -> web.Response:
        paths.append(request.path)
        if request.path == "/daily_list_id":
            return web.Response(text="../../admin")
        return web.json_response({"domain": "x.com", "ranks": []})

    app = web.Application()
    app.router.add_get("/{tail:.*}", handler)
    base = str((await aiohttp_server(app)).make_url("")).rstrip("/")
    provider = TrancoProvider(ProviderConfig(base_url=base, data_dir=str(tmp_path)), clock=lambda: clock.wall)

    await lookup(provider, http, "x.com")
    await provider.wait_refresh()

    assert sorted(paths) == ["/api/ranks/domain/x.com", "/daily_list_id", "/daily_list_id"]


async def test_without_a_directory_only_the_rank_api_answers(upstream: Upstream, clock: Clock,
                                                             http: HttpClient) -> None:
    provider = make(upstream, clock, None)
    rank, domain = ranked_domain()

    result = await lookup(provider, http, domain)
    await provider.wait_refresh()

    assert result.signals["tranco.rank"] == rank
    assert provider.list_file(provider.config) is None and upstream.count("/daily_list_id") == 0
    with pytest.raises(ProviderError) as caught:  # the next call within the second: paced like a 429's pause
        await lookup(provider, http, domain)
    assert caught.value.rate_limited and caught.value.retryable and 0 < (caught.value.retry_after or 0) <= 1.0
    assert upstream.count("/api/ranks/domain/") == 1


def test_the_file_lives_under_the_data_directory_unless_the_option_moves_it(tmp_path: Path) -> None:
    data = tmp_path / "data"
    environ = {"LINKMETER_DATA_DIR": str(data)}

    default = EngineSettings.from_env(environ).configure(TrancoProvider)
    moved = EngineSettings.from_env({**environ, "LINKMETER_TRANCO_OPT_DIR": str(tmp_path / "shared")}
                                    ).configure(TrancoProvider)

    assert isinstance(default, TrancoProvider) and isinstance(moved, TrancoProvider)
    assert default.list_file(default.config).parent == data / "tranco"
    assert moved.list_file(moved.config).parent == tmp_path / "shared"


def test_the_key_is_the_registered_domain_of_the_final_domain() -> None:
    provider = TrancoProvider()

    assert provider.key({"domain": "lnk.example", "page.final_domain": "WWW.Site1.com."}) == "site1.com"
    assert provider.key({"domain": "news.example.org"}) == "example.org"
