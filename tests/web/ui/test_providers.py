"""The providers page: health, breakers and caches per provider (policy, where they live, entries, hit ratio)."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator

import pytest
from asgiref.sync import async_to_sync
from django.test import Client

from linkmeter.assembly import build_engine
from linkmeter.engine.cache import CacheEntry
from linkmeter.engine.ports import ResultCache
from linkmeter.engine.runner import Engine
from linkmeter.web.jobs import health
from linkmeter.web.jobs.health import forget_counts
from linkmeter.web.links.models import Analysis, ProviderResult
from linkmeter.web.links.services.submission import analysis_submit
from tests.web.conftest import UNREACHABLE_REDIS_URL, SharedRedis, use_engine

pytestmark = pytest.mark.django_db

PAYLOAD = "<script>alert(1)</script>"


@pytest.fixture(autouse=True)
def no_engine() -> Iterator[None]:
    use_engine(None)
    yield
    use_engine(None)


@pytest.fixture
def memory_engine() -> Iterator[Engine]:
    """An embedded engine (in-memory state) registered as `linkmeter serve` does."""
    engine = build_engine({})
    use_engine(engine)
    yield engine
    use_engine(None)
    async_to_sync(engine.close)()


def fill(cache: ResultCache, provider: str, count: int) -> None:
    async def go() -> None:
        for number in range(count):
            await cache.set(f"{provider}:key-{number}", CacheEntry({}, None, 0.0), 600.0)

    async_to_sync(go)()


def row(html: str, provider: str) -> str:
    """The table row of ``provider`` (its cells' text, tags kept)."""
    found = re.search(rf'<tr data-provider="{provider}">(.*?)</tr>', html, re.S)
    assert found, provider
    return found.group(1)


def cells(html: str, provider: str) -> dict[str, str]:
    """The cache cells of a provider's row as text: cache (TTL and where), entries, hit ratio."""
    text = row(html, provider)

    def cell(pattern: str) -> str:
        found = re.search(pattern, text, re.S)
        assert found, pattern
        return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", found.group(1))).strip()

    return {"cache": cell(r"<td class=\"small\" data-cache-store=\"\w+\">(.*?)</td>"),
            "entries": cell(r"<td [^>]*data-cache-entries>(.*?)</td>"),
            "hit_ratio": cell(r"<td [^>]*data-hit-ratio>(.*?)</td>")}


def store_results(statuses: dict[str, list[str]]) -> None:
    """Stored results, as the runner would leave them: per provider, one result per status given."""
    count = max(len(values) for values in statuses.values())
    submission = analysis_submit(urls=[f"https://a.example.org/{i}" for i in range(count)])
    analyses = list(Analysis.objects.filter(batch_items__batch=submission.batch).order_by("id"))
    for provider, values in statuses.items():
        ProviderResult.objects.bulk_create(
            ProviderResult(analysis=analysis, provider=provider, status=status, latency_ms=10.0,
                           message=f"{status} {PAYLOAD}" if status == "error" else "")
            for analysis, status in zip(analyses, values, strict=False))


def test_the_table_shows_the_embedded_engines_memory_cache(client: Client, memory_engine: Engine) -> None:
    fill(memory_engine.state.cache, "rdap", 1234)
    fill(memory_engine.state.cache, "page", 2)
    html = client.get("/providers/").content.decode()
    for heading in ("Cache", "Entries", "Hit ratio"):
        assert f">{heading}</th>" in html
    assert cells(html, "rdap") == {"cache": "TTL 1 d this process (memory)", "entries": "1,234", "hit_ratio": "—"}
    assert cells(html, "page") == {"cache": "TTL 1 min this process (memory)", "entries": "2", "hit_ratio": "—"}
    assert cells(html, "wayback")["cache"] == "TTL 6 h this process (memory)"
    assert cells(html, "wayback")["entries"] == "0"
    partial = client.get("/providers/table/").content.decode()  # what htmx swaps in every 3 s
    assert cells(partial, "rdap")["entries"] == "1,234"


def test_a_provider_that_is_not_cached_says_so(client: Client) -> None:
    engine = build_engine({"LINKMETER_DNS_CACHE_TTL": "0"})
    use_engine(engine)
    try:
        html = client.get("/providers/table/").content.decode()
    finally:
        use_engine(None)
        async_to_sync(engine.close)()
    assert cells(html, "dns")["cache"] == "not cached this process (memory)"


def test_more_entries_than_the_limit_are_shown_as_more_than(client: Client, memory_engine: Engine,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(health, "ENTRIES_LIMIT", 1000)
    fill(memory_engine.state.cache, "rdap", 1001)
    fill(memory_engine.state.cache, "page", 1000)
    html = client.get("/providers/table/").content.decode()
    assert cells(html, "rdap")["entries"] == "more than 1,000"
    assert cells(html, "page")["entries"] == "1,000"


def test_the_hit_ratio_comes_from_the_stored_results_of_the_window(client: Client) -> None:
    store_results({"page": ["cached", "cached", "cached", "ok"], "rdap": ["error", "timeout"],
                   "dns": ["ok", "ok", "skipped"], "wayback": ["cached"]})
    html = client.get("/providers/table/").content.decode()
    assert cells(html, "page")["hit_ratio"] == "75 %"
    assert cells(html, "dns")["hit_ratio"] == "0 %"
    assert cells(html, "wayback")["hit_ratio"] == "100 %"
    assert cells(html, "rdap")["hit_ratio"] == "—"  # no successful result: nothing to compare
    assert cells(html, "reddit")["hit_ratio"] == "—"  # nothing ran
    ProviderResult.objects.filter(provider="page").update(created_at="2000-01-01T00:00:00Z")  # out of the window
    assert cells(client.get("/providers/table/").content.decode(), "page")["hit_ratio"] == "—"


def test_without_an_engine_or_redis_the_cache_is_unknown(client: Client, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LINKMETER_REDIS_URL", raising=False)
    html = client.get("/providers/table/").content.decode()
    assert cells(html, "rdap") == {"cache": "TTL 1 d unknown", "entries": "unknown", "hit_ratio": "—"}


def test_celery_mode_shows_the_cache_the_workers_share_in_redis(client: Client, worker_redis: SharedRedis) -> None:
    async_to_sync(worker_redis.fill)("rdap", 3)
    async_to_sync(worker_redis.fill)("dns", 1)
    html = client.get("/providers/").content.decode()
    assert cells(html, "rdap") == {"cache": "TTL 1 d shared (Redis)", "entries": "3", "hit_ratio": "—"}
    assert cells(html, "dns")["entries"] == "1" and cells(html, "page")["entries"] == "0"
    assert '<span class="badge breaker-closed">closed</span>' in row(html, "rdap")  # read from the same Redis


def test_an_unreachable_redis_shows_unknown_and_the_page_still_renders_fast(
        client: Client, worker_redis: SharedRedis, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LINKMETER_REDIS_URL", UNREACHABLE_REDIS_URL)
    forget_counts()
    for path in ("/providers/", "/providers/table/"):
        started = time.monotonic()
        response = client.get(path)
        assert time.monotonic() - started < 2.0, path
        assert response.status_code == 200
        html = response.content.decode()
        assert cells(html, "rdap") == {"cache": "TTL 1 d shared (Redis)", "entries": "unknown", "hit_ratio": "—"}
        assert '<span class="badge breaker-unknown">unknown</span>' in row(html, "rdap")


def test_untrusted_text_on_the_providers_page_stays_escaped(client: Client, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LINKMETER_RDAP_CACHE_TTL", PAYLOAD)  # quoted back in the "bad settings" reason
    store_results({"page": ["error", "cached", "ok"]})
    html = client.get("/providers/table/").content.decode()
    assert PAYLOAD not in html and "<script" not in html
    assert "error &lt;script&gt;alert(1)&lt;/script&gt;" in row(html, "page")  # the last error
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in row(html, "rdap")  # the disabled reason
    assert cells(html, "rdap")["cache"] == "TTL 1 d unknown"  # the provider's own policy
    assert cells(html, "page")["hit_ratio"] == "50 %"


def test_the_table_groups_providers_and_shows_default_set_key_and_limits(
        client: Client, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LINKMETER_SAFEBROWSING_API_KEY", raising=False)
    monkeypatch.setenv("LINKMETER_MOZ_API_KEY", "id:very-secret")
    html = client.get("/providers/").content.decode()
    assert re.findall(r'<tr class="group-row" data-group="(\w+)">', html) == [
        "page", "domain", "threat", "authority", "social", "archive", "indicator"]
    safebrowsing, moz, pagespeed, tranco = (row(html, n) for n in ("safebrowsing", "moz", "pagespeed", "tranco"))
    assert 'data-key="required" data-key-set="false"' in safebrowsing and "not set" in safebrowsing
    assert "LINKMETER_SAFEBROWSING_API_KEY" in safebrowsing and "get a key" in safebrowsing
    assert ">disabled</span>" in safebrowsing and "500 URLs a request" in safebrowsing
    assert 'data-key-set="true"' in moz and "very-secret" not in html
    assert "on request" in pagespeed and 'data-default-set="false"' in pagespeed
    assert "none needed" in tranco and "default set" in tranco
