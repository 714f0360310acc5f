"""The engine with every real provider against the emulator: answers, coalescing, hangs, 5xx and 429s."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import dns.message
import dns.rdatatype

from linkmeter.assembly import build_engine
from linkmeter.emulator.client import environment, write_ca
from linkmeter.emulator.knobs import Knobs
from linkmeter.emulator.server import RunningEmulator
from linkmeter.emulator.web import SAMPLE_URLS
from linkmeter.engine.results import SUCCESS, CallStatus, UrlResult, UrlStatus
from linkmeter.engine.runner import Engine
from linkmeter.engine.urls import parse_url
from linkmeter.providers.registry import DEFAULT_NAMES
from linkmeter.providers.registry import INDICATORS as INDICATOR_CLASSES
from tests.conftest import MakeEmulator

ALL_PROVIDERS = set(DEFAULT_NAMES)  # what runs when a submission names no provider
INDICATORS = {cls.name for cls in INDICATOR_CLASSES}  # derive numbers from signals: no upstream call, no raw
HTTP_APIS = ("rdap", "wayback", "hackernews", "reddit")
BLOCKLIST_ZONES = ("dbl.spamhaus.org", "multi.surbl.org", "multi.uribl.com")
# Left out when a page has none (or an invalid one, as the XSS page's lang attribute); every other signal is
# always reported, None when there is nothing to report.
OPTIONAL_SIGNALS = {"page.title", "page.description", "page.language"}


@asynccontextmanager
async def running_engine(emulator: RunningEmulator, tmp_path: Path, *, url_deadline: float | None = None,
                         **overrides: str) -> AsyncIterator[Engine]:
    """An engine built from the emulator's LINKMETER_* environment (plus ``overrides``), closed after."""
    ca_file = write_ca(emulator.info(), tmp_path, f"ca-{emulator.http_port}.pem")
    # A data directory of its own: providers keep files there (the Tranco list) that no other test shares.
    environ = {**environment(emulator.info(), ca_file=ca_file), "LINKMETER_DATA_DIR": str(tmp_path), **overrides}
    engine = build_engine(environ, relax_rate_limits=True, url_deadline=url_deadline)
    try:
        yield engine
    finally:
        await engine.close()
        await engine.http.close()


async def analyze_all(engine: Engine, urls: list[str], concurrency: int = 20) -> dict[str, UrlResult]:
    return {result.url: result async for result in engine.analyze_many(urls, concurrency=concurrency)}


def count_dns_queries(emulator: RunningEmulator) -> Counter[tuple[str, str]]:
    """Counts (name, type) of every query reaching the emulator's DNS server from now on."""
    server: Any = emulator._dns
    assert server is not None
    counts: Counter[tuple[str, str]] = Counter()
    respond: Callable[..., Awaitable[bytes | None]] = server.respond

    async def counting(wire: bytes, client: str, *, max_size: int | None) -> bytes | None:
        question = dns.message.from_wire(wire).question[0]
        name = question.name.to_text(omit_final_dot=True).lower()
        counts[name, dns.rdatatype.to_text(question.rdtype)] += 1
        return await respond(wire, client, max_size=max_size)

    server.respond = counting
    return counts


async def test_every_provider_answers_every_sample_url(emulator: RunningEmulator, tmp_path: Path) -> None:
    async with running_engine(emulator, tmp_path) as engine:
        results = await analyze_all(engine, SAMPLE_URLS)
        provides = {p.name: set(p.provides) for p in engine.plan.providers}
    assert set(results) == {parse_url(url).url for url in SAMPLE_URLS}
    for url, result in results.items():
        assert set(result.providers) == ALL_PROVIDERS, url
        problems = {name: (str(call.status), call.message) for name, call in result.providers.items()
                    if call.status not in SUCCESS}
        assert problems == {}, url
        assert result.status is UrlStatus.DONE
        for name, call in result.providers.items():
            assert provides[name] - OPTIONAL_SIGNALS <= set(call.signals), f"{url}: {name} signals missing"
            assert provides[name] - OPTIONAL_SIGNALS <= set(result.signals), f"{url}: {name} signals missing"
            if name not in INDICATORS:
                assert call.raw is not None, f"{url}: {name} kept no raw answer"
        assert result.signals["page.status"] == 200
        assert isinstance(result.signals["rdap.registered"], bool)
        assert result.signals["dnsbl.listed_count"] >= 0
        assert result.signals["dns.ns_count"] >= 0
        assert isinstance(result.signals["wayback.archived"], bool)
        assert result.signals["hackernews.stories"] >= 0
        assert result.signals["reddit.posts"] >= 0
        assert result.signals["engagement.total"] >= 0
    spam = results["https://spam-deals.example/offer"]
    assert spam.signals["dnsbl.listed_count"] > 0


async def test_urls_on_one_domain_make_one_upstream_call_per_domain_provider(
        emulator: RunningEmulator, tmp_path: Path) -> None:
    urls = [f"https://news.example.org/a/{i}" for i in range(1, 51)]
    dns_queries = count_dns_queries(emulator)
    async with running_engine(emulator, tmp_path) as engine:
        results = await analyze_all(engine, urls, concurrency=50)
    assert len(results) == 50
    assert {r.signals.get("page.final_domain") for r in results.values()} == {"example.org"}

    rdap_paths = {path: n for path, n in emulator.path_counts.items() if path.startswith("/rdap/")}
    assert rdap_paths.pop("/rdap/dns.json") == 1  # the IANA bootstrap, fetched once
    assert list(rdap_paths.values()) == [1], rdap_paths  # one domain query for 50 URLs
    [domain_path] = rdap_paths
    assert domain_path.endswith("/domain/example.org")

    for rdtype in ("A", "AAAA", "MX", "NS"):
        assert dns_queries["example.org", rdtype] == 1, rdtype
    for zone in BLOCKLIST_ZONES:
        asked = {key: n for key, n in dns_queries.items() if key[0] == f"example.org.{zone}"}
        assert asked and set(asked.values()) == {1}, (zone, asked)

    for name in ("rdap", "dns", "dnsbl"):
        statuses = Counter(str(r.providers[name].status) for r in results.values())
        assert statuses == {"ok": 1, "cached": 49}, (name, statuses)


async def test_a_hanging_provider_times_out_alone_at_its_timeout(
        emulator_factory: MakeEmulator, tmp_path: Path) -> None:
    emulator = await emulator_factory(knobs=Knobs(hang=frozenset({"wayback"})))
    async with running_engine(emulator, tmp_path, url_deadline=10,
                              LINKMETER_WAYBACK_TIMEOUT="0.5", LINKMETER_WAYBACK_RETRIES="0") as engine:
        began = time.monotonic()
        result = await engine.analyze("https://news.example.org/a/1")
        elapsed = time.monotonic() - began
    wayback = result.providers["wayback"]
    assert wayback.status is CallStatus.TIMEOUT
    assert wayback.attempts == 1
    assert 450 <= wayback.latency_ms < 3000
    assert elapsed < 5, "the hang held up the whole URL"
    others = {name: str(call.status) for name, call in result.providers.items() if name != "wayback"}
    assert set(others.values()) == {"ok"}, others
    assert result.status is UrlStatus.PARTIAL
    assert "wayback.archived" not in result.signals


async def test_when_every_upstream_fails_every_call_errs_in_time_and_only_the_url_is_judged(
        emulator_factory: MakeEmulator, tmp_path: Path) -> None:
    emulator = await emulator_factory(knobs=Knobs(error_rate=1.0))
    deadline = 6.0
    urls = ["https://news.example.org/a/1", "https://techblog.example/blog/async-python-in-practice"]
    async with running_engine(emulator, tmp_path, url_deadline=deadline) as engine:
        results = await analyze_all(engine, urls)
        policies = {p.name: p.policy for p in engine.plan.providers}
    assert set(results) == set(urls)
    for url, result in results.items():
        statuses = {name: call.status for name, call in result.providers.items()}
        # The spam indicator still judges the URL's spelling (its documented URL-only verdict), so the URL ends
        # partial with that one cell; every other call errs or is skipped.
        assert statuses.pop("spam") is CallStatus.OK and result.signals["spam.model"], url
        assert result.status is UrlStatus.PARTIAL, url
        assert set(statuses.values()) <= {CallStatus.ERROR, CallStatus.SKIPPED}, (url, statuses)
        assert result.elapsed_ms < (deadline + 1) * 1000
        for name in HTTP_APIS:
            message = result.providers[name].message
            assert "HTTP 5" in message, (url, name, message)
        for name, call in result.providers.items():
            if name in INDICATORS:
                continue
            # 5xx and SERVFAIL are retryable: every attempt the policy allows is made.
            assert call.status is CallStatus.ERROR, (url, name, call.status)
            assert call.attempts == policies[name].retries + 1 > 1, (url, name, call.attempts)
    assert emulator.request_counts["wayback"] == len(urls) * (policies["wayback"].retries + 1)


async def test_upstream_rate_limits_are_retried_after_retry_after_never_errors(
        emulator_factory: MakeEmulator, tmp_path: Path) -> None:
    urls_count = 6  # three times the emulator's 2/s: most of the first requests get a 429
    emulator = await emulator_factory(knobs=Knobs(rate_limits={"hackernews": 2.0}))
    urls = [f"https://news.example.org/a/{i}" for i in range(1, urls_count + 1)]
    async with running_engine(emulator, tmp_path, url_deadline=20, LINKMETER_HACKERNEWS_RETRIES="4") as engine:
        results = await analyze_all(engine, urls)
    calls = [result.providers["hackernews"] for result in results.values()]
    assert {str(call.status) for call in calls} <= {"ok", "rate_limited"}
    assert emulator.request_counts["hackernews"] > urls_count, "the emulator never answered 429"
    retried = [call for call in calls if call.attempts > 1]
    assert retried, "no call was retried after a 429"
    for call in retried:
        assert call.latency_ms >= 1000 * (call.attempts - 1) - 50, "retried before Retry-After (1 s)"
    assert all(r.status in (UrlStatus.DONE, UrlStatus.PARTIAL) for r in results.values())
