"""The Mastodon provider against emulated instances: statuses, trends, dead and slow instances, rate headers."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from linkmeter.emulator.apis import mastodon as masto_api
from linkmeter.emulator.world import World
from linkmeter.engine.http import HttpClient
from linkmeter.engine.provider import Collected, ProviderConfig, ProviderError
from linkmeter.engine.urls import url_variants
from linkmeter.indicators.engagement import TERMS
from linkmeter.providers._mastodon_parse import linking_statuses, reset_time, status_links, trend_uses
from linkmeter.providers.mastodon import DEFAULT_INSTANCES, TRENDS_TTL, MastodonProvider, instance_base
from tests.providers.conftest import EmulatedApi, collect_from

SEED = 21
API = masto_api
ServerFactory = Callable[[web.Application], Awaitable[TestServer]]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# The trends example of REFERENCE.md section 11b: every history value is a string.
REFERENCE_TRENDS: list[dict[str, Any]] = [{"url": "https://www.nbcnews.com/news/x", "title": "x",
                                           "provider_name": "NBC News", "history": [
    {"day": "1661817600", "accounts": "7", "uses": "7"}, {"day": "1661731200", "accounts": "23", "uses": "23"}]}]


@pytest.fixture
def emulator(api: EmulatedApi) -> str:
    return api.base_url


@pytest.fixture
def paths(api: EmulatedApi) -> Counter[str]:
    """Requests by path, ``/mastodon/<host>/api/v2/search``."""
    return api.hits


def healthy(world: World, count: int = 2) -> list[str]:
    """Instances of this world whose search finds statuses."""
    return [host for i in range(50) if masto_api.searchable(world, host := f"i{i}.example")][:count]


def provider_for(base_url: str, instances: list[str] | None = None, *, now: Callable[[], float] = time.time,
                 **options: str) -> MastodonProvider:
    extra = dict(options)
    if instances is not None:
        extra["instances"] = ",".join(instances)
    return MastodonProvider(ProviderConfig(base_url=base_url, extra=extra), now=now)


async def collect(http: HttpClient, provider: MastodonProvider, url: str) -> Collected:
    return await collect_from(provider, http, {"url": url})


def expected_counts(world: World, instances: list[str], url: str) -> tuple[int, int, int, int]:
    """(statuses, reblogs, favourites, replies): each status once, with the most any instance saw."""
    spellings = set(url_variants(url))
    best: dict[str, tuple[int, int, int]] = {}
    for host in instances:
        if not masto_api.searchable(world, host):
            continue
        for toot in masto_api.toots(world, url):
            seen = masto_api.seen_by(world, host, toot)
            if seen is not None and seen.link in spellings:
                known = best.get(seen.uri, (0, 0, 0))
                best[seen.uri] = (max(known[0], seen.reblogs), max(known[1], seen.favourites),
                                  max(known[2], seen.replies))
    return (len(best), sum(b[0] for b in best.values()), sum(b[1] for b in best.values()),
            sum(b[2] for b in best.values()))


def federated_url(world: World, instances: list[str]) -> str:
    """A URL whose statuses at least two of ``instances`` both see."""
    for i in range(5000):
        url = f"https://www.site{i}.com/post/{i}"
        toots = masto_api.toots(world, url)
        if any(sum(masto_api.seen_by(world, host, toot) is not None for host in instances) >= 2 for toot in toots):
            return url
    raise AssertionError("no federated URL")


async def test_statuses_are_counted_once_across_instances_with_the_best_counts(
    http: HttpClient, emulator: str, world: World
) -> None:
    instances = healthy(world)
    url = federated_url(world, instances)
    statuses, reblogs, favourites, replies = expected_counts(world, instances, url)

    result = await collect(http, provider_for(emulator, instances), url)

    assert statuses > 0
    assert {k: v for k, v in result.signals.items() if k != "mastodon.trend_uses"} == {
        "mastodon.statuses": statuses, "mastodon.reblogs": reblogs, "mastodon.favourites": favourites,
        "mastodon.replies": replies, "mastodon.instances_answered": instances, "mastodon.instances_failed": []}
    assert result.signals["mastodon.trend_uses"] == 0


async def test_trending_link_uses_are_summed_over_the_instances_trends(
    http: HttpClient, emulator: str, world: World
) -> None:
    instances = healthy(world)
    url = masto_api.trending_links(world, instances[0])[0]["url"]
    uses = sum(int(day["uses"]) for host in instances for card in masto_api.trending_links(world, host)
               if card["url"] == url for day in card["history"])

    result = await collect(http, provider_for(emulator, instances), url)

    assert result.signals["mastodon.trend_uses"] == uses > 0


async def test_a_dead_instance_costs_only_its_part(http: HttpClient, emulator: str, world: World) -> None:
    alive = healthy(world, 1)
    url = federated_url(world, healthy(world, 2))

    result = await collect(http, provider_for(emulator, [*alive, "dead.example"]), url)

    assert result.signals["mastodon.instances_answered"] == alive
    assert result.signals["mastodon.instances_failed"] == ["dead.example"]
    assert result.signals["mastodon.statuses"] == expected_counts(world, alive, url)[0]
    assert "connection" in result.raw["failures"]["dead.example"]


async def test_a_slow_instance_is_given_up_after_its_own_timeout(http: HttpClient, emulator: str,
                                                                 world: World) -> None:
    alive = healthy(world, 1)

    result = await collect(http, provider_for(emulator, [*alive, "slow.example"], instance_timeout="0.3"),
                           "https://www.site1.com/post/1")

    assert result.signals["mastodon.instances_answered"] == alive
    assert result.signals["mastodon.instances_failed"] == ["slow.example"]
    assert result.raw["failures"]["slow.example"] == "no answer within 0.3s"


async def test_when_no_instance_answers_the_call_fails_retryably(http: HttpClient, emulator: str) -> None:
    with pytest.raises(ProviderError) as caught:
        await collect(http, provider_for(emulator, ["dead.example", "dead2.example"]), "https://www.site1.com/a")

    assert caught.value.retryable and not caught.value.rate_limited
    assert "dead.example" in caught.value.message and "dead2.example" in caught.value.message


async def test_an_instance_that_answered_429_is_left_alone_until_its_reset(
    http: HttpClient, emulator: str, world: World, paths: Counter[str]
) -> None:
    alive = healthy(world, 1)
    provider = provider_for(emulator, [*alive, "limited.example"])

    first = await collect(http, provider, "https://www.site1.com/a")
    sent = paths["/mastodon/limited.example/api/v2/search"]
    second = await collect(http, provider, "https://www.site2.com/b")

    assert first.signals["mastodon.instances_failed"] == second.signals["mastodon.instances_failed"] == \
        ["limited.example"]
    assert sent == 1 and paths["/mastodon/limited.example/api/v2/search"] == 1
    assert "rate limited for" in second.raw["failures"]["limited.example"]


async def test_an_exhausted_window_puts_the_instance_aside_before_any_429(
    http: HttpClient, emulator: str, world: World, paths: Counter[str]
) -> None:
    alive = healthy(world, 1)
    provider = provider_for(emulator, [*alive, "exhausted.example"])

    first = await collect(http, provider, "https://www.site1.com/a")
    second = await collect(http, provider, "https://www.site2.com/b")

    assert first.signals["mastodon.instances_answered"] == [*alive, "exhausted.example"]
    assert second.signals["mastodon.instances_failed"] == ["exhausted.example"]
    assert paths["/mastodon/exhausted.example/api/v2/search"] == 1


async def test_when_every_instance_is_rate_limited_the_call_is_rate_limited_until_the_first_reset(
    http: HttpClient, emulator: str
) -> None:
    with pytest.raises(ProviderError) as caught:
        await collect(http, provider_for(emulator, ["limited.example", "limited2.example"]),
                      "https://www.site1.com/a")

    assert caught.value.rate_limited and caught.value.retry_after is not None
    assert 100 <= caught.value.retry_after <= 121


async def test_an_instance_without_search_or_trends_still_answers(http: HttpClient, emulator: str) -> None:
    result = await collect(http, provider_for(emulator, ["quiet.example", "old.example"]),
                           "https://www.site1.com/a")

    assert result.signals["mastodon.instances_answered"] == ["quiet.example", "old.example"]
    assert result.signals["mastodon.statuses"] == 0


async def test_the_requests_are_the_public_search_and_trends_without_a_token(
    aiohttp_server: ServerFactory, http: HttpClient
) -> None:
    seen: list[tuple[str, dict[str, str], str | None]] = []

    async def handler(request: web.Request) -> web.Response:
        seen.append((request.path, dict(request.query), request.headers.get("Authorization")))
        body: Any = [] if request.path.endswith("/links") else {"accounts": [], "statuses": [], "hashtags": []}
        return web.json_response(body)

    app = web.Application()
    app.router.add_get("/{instance}/api/v2/search", handler)
    app.router.add_get("/{instance}/api/v1/trends/links", handler)
    base = str((await aiohttp_server(app)).make_url("")).rstrip("/")

    await collect(http, provider_for(base, ["fosstodon.org"]), "https://example.com/a")

    assert sorted(seen) == [
        ("/fosstodon.org/api/v1/trends/links", {"limit": "20"}, None),
        ("/fosstodon.org/api/v2/search", {"q": "https://example.com/a", "type": "statuses", "limit": "40"}, None),
    ]


async def test_trends_are_fetched_once_per_ttl(http: HttpClient, emulator: str, world: World,
                                               paths: Counter[str]) -> None:
    instance = healthy(world, 1)
    offset = [0.0]
    provider = provider_for(emulator, instance, now=lambda: time.time() + offset[0])

    for i in range(3):
        await collect(http, provider, f"https://www.site{i}.com/a")
    offset[0] = TRENDS_TTL + 1
    await collect(http, provider, "https://www.site9.com/a")

    assert paths[f"/mastodon/{instance[0]}/api/v1/trends/links"] == 2
    assert paths[f"/mastodon/{instance[0]}/api/v2/search"] == 4


def test_the_real_instances_are_reached_by_host_and_the_emulated_ones_by_path() -> None:
    assert instance_base(MastodonProvider.default_base_url, "mastodon.social") == "https://mastodon.social"
    assert instance_base("http://127.0.0.1:8765/mastodon/", "mstdn.social") == \
        "http://127.0.0.1:8765/mastodon/mstdn.social"
    assert MastodonProvider().instances == DEFAULT_INSTANCES


@pytest.mark.parametrize(("options", "variable"), [
    ({"instances": "mastodon.social,https://evil/x"}, "LINKMETER_MASTODON_OPT_INSTANCES"),
    ({"instances": "localhost"}, "LINKMETER_MASTODON_OPT_INSTANCES"),
    ({"instance_timeout": "soon"}, "LINKMETER_MASTODON_OPT_INSTANCE_TIMEOUT"),
    ({"instance_timeout": "0"}, "LINKMETER_MASTODON_OPT_INSTANCE_TIMEOUT"),
])
def test_a_bad_option_disables_the_provider_naming_it(options: dict[str, str], variable: str) -> None:
    reason = MastodonProvider(ProviderConfig(base_url="https://{instance}", extra=options)).disabled_reason()

    assert reason is not None and variable in reason


def test_instances_are_read_as_lower_case_host_names_once_each() -> None:
    provider = provider_for("https://{instance}", ["Mastodon.Social", " fosstodon.org. ", "mastodon.social"])

    assert provider.instances == ("mastodon.social", "fosstodon.org") and provider.disabled_reason() is None


def test_reference_trends_with_string_history() -> None:
    assert trend_uses(REFERENCE_TRENDS, "https://www.nbcnews.com/news/x/") == 30
    assert trend_uses(REFERENCE_TRENDS, "https://www.nbcnews.com/news/y") == 0
    with pytest.raises(ProviderError):
        trend_uses({"error": "nope"}, "https://example.com/")


def test_statuses_link_through_their_card_or_their_content() -> None:
    content = ('<p>see <a href="https://ex.com/p/" rel="nofollow noopener noreferrer" target="_blank">'
               '<span class="invisible">https://</span><span class="">ex.com/p/</span></a></p>')
    answer = {"statuses": [
        {"uri": "https://a/1", "content": content, "reblogs_count": 2, "favourites_count": "5", "replies_count": 1},
        {"uri": "https://a/2", "content": "<p>ex.com/p in words only</p>", "card": {"url": "http://ex.com/p"},
         "reblogs_count": 1, "favourites_count": 1, "replies_count": 0},
        {"uri": "https://a/3", "content": '<a href="https://ex.com/p/comments">x</a>', "favourites_count": 9},
        {"uri": "https://a/1", "content": content, "favourites_count": 5},
    ]}

    statuses = linking_statuses(answer, "https://ex.com/p")

    assert [(s.uri, s.reblogs, s.favourites, s.replies) for s in statuses] == [("https://a/1", 2, 5, 1),
                                                                              ("https://a/2", 1, 1, 0)]
    assert list(status_links({"content": content})) == ["https://ex.com/p/"]


def test_reset_is_an_iso_timestamp_or_epoch_seconds_else_retry_after() -> None:
    assert reset_time({"X-RateLimit-Reset": "2026-01-01T00:05:00.000Z"}, 0) == 1767225900.0
    assert reset_time({"X-RateLimit-Reset": "1767225900"}, 0) == 1767225900.0
    assert reset_time({"Retry-After": "30"}, 100.0) == 130.0
    assert reset_time({}, 100.0) is None


def test_engagement_totals_reblogs_favourites_and_replies() -> None:
    assert TERMS["mastodon"] == ("mastodon.reblogs", "mastodon.favourites", "mastodon.replies")
