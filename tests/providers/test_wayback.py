"""The Wayback provider against the emulated CDX server and the reference rows."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

import pytest
from aiohttp import web

from linkmeter.emulator.apis import wayback as wayback_api
from linkmeter.emulator.world import World
from linkmeter.engine.http import HttpClient
from linkmeter.engine.provider import Collected, ProviderConfig, ProviderError
from linkmeter.providers.wayback import WaybackProvider, parse_cdx, summarise
from tests.providers.conftest import Answer, EmulateApi, StubApi, answering, collect_from, raises_provider_error

SEED = 13
CDX = "/cdx/search/cdx"

# The CDX README example (REFERENCE.md section 3b).
REFERENCE_ROWS = [
    ["urlkey", "timestamp", "original", "mimetype", "statuscode", "digest", "length"],
    ["org,archive)/", "19970126045828", "http://www.archive.org:80/", "text/html", "200",
     "Q4YULN754FHV2U6Q5JUT6Q2P57WEWNNY", "1415"],
]


@pytest.fixture
async def emulator(emulated_api: EmulateApi) -> str:
    return (await emulated_api(wayback_api)).base_url


async def collect(http: HttpClient, base_url: str, signals: dict[str, Any]) -> Collected:
    return await collect_from(WaybackProvider(ProviderConfig(base_url=base_url)), http, signals)


def find_url(world: World, predicate: Callable[[list[datetime]], bool]) -> str:
    for i in range(5000):
        url = f"https://www.site{i}.com/page/{i}"
        if predicate(wayback_api.captures(world, url)):
            return url
    raise AssertionError("no such URL in this world")


def iso(when: datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


async def test_signals_match_the_worlds_captures(http: HttpClient, emulator: str, world: World) -> None:
    url = find_url(world, lambda captures: len(captures) >= 3)
    captures = wayback_api.captures(world, url)

    result = await collect(http, emulator, {"url": url})

    assert result.signals == {
        "wayback.archived": True,
        "wayback.capture_count": len(captures),
        "wayback.first_capture": iso(min(captures)),
        "wayback.last_capture": iso(max(captures)),
    }
    assert result.raw[0] == ["timestamp", "statuscode"]


async def test_zero_captures(http: HttpClient, emulator: str, world: World) -> None:
    url = find_url(world, lambda captures: not captures)

    result = await collect(http, emulator, {"url": url})

    assert result.raw == []
    assert result.signals == {"wayback.archived": False, "wayback.capture_count": 0,
                              "wayback.first_capture": None, "wayback.last_capture": None}


async def test_an_empty_body_is_zero_captures(stub_api: StubApi, http: HttpClient) -> None:
    async def handler(request: web.Request) -> web.Response:
        return web.Response(body=b"\n", content_type="text/plain")

    result = await collect(http, await stub_api({CDX: handler}), {"url": "https://ex.com/"})

    assert result.signals["wayback.capture_count"] == 0 and result.signals["wayback.archived"] is False


async def test_the_canonical_url_is_asked_with_json_output(
    stub_api: StubApi, http: HttpClient
) -> None:
    seen: list[dict[str, str]] = []

    async def handler(request: web.Request) -> web.Response:
        seen.append(dict(request.query))
        return web.json_response([])

    signals = {"url": "https://ex.com/?utm=1", "page.canonical_url": "https://ex.com/article"}
    await collect(http, await stub_api({CDX: handler}), signals)

    assert seen == [{"url": "https://ex.com/article", "matchType": "exact", "output": "json",
                     "fl": "timestamp,statuscode"}]
    assert WaybackProvider().key(signals) == "https://ex.com/article"


def test_reference_rows() -> None:
    assert summarise(parse_cdx(REFERENCE_ROWS)) == {
        "wayback.archived": True,
        "wayback.capture_count": 1,
        "wayback.first_capture": "1997-01-26T04:58:28Z",
        "wayback.last_capture": "1997-01-26T04:58:28Z",
    }


def test_only_error_captures_are_not_archived() -> None:
    rows = [["timestamp", "statuscode"], ["20200101000000", "404"], ["20210101000000", "503"]]

    assert summarise(parse_cdx(rows)) == {
        "wayback.archived": False,
        "wayback.capture_count": 2,
        "wayback.first_capture": "2020-01-01T00:00:00Z",
        "wayback.last_capture": "2021-01-01T00:00:00Z",
    }


def test_revisits_and_redirects_count_as_archived_and_the_resume_key_is_ignored() -> None:
    rows = [["timestamp", "statuscode"], ["20200101000000", "-"], ["20190101000000", "301"], [], ["resumekey"]]

    signals = summarise(parse_cdx(rows))

    assert signals["wayback.archived"] is True and signals["wayback.capture_count"] == 2
    assert signals["wayback.first_capture"] == "2019-01-01T00:00:00Z"


@pytest.mark.parametrize("rows", [{"rows": []}, [["statuscode"], ["200"]], [["timestamp", "statuscode"], ["1"]]])
def test_malformed_rows_are_errors(rows: Any) -> None:
    with pytest.raises(ProviderError) as caught:
        parse_cdx(rows)

    assert not caught.value.retryable


@pytest.mark.parametrize(("answer", "expected"), [
    pytest.param(lambda: wayback_api.rate_limited_response(60.0), {"rate_limited": True, "retry_after": 60.0},
                 id="429 is rate-limited with retry-after"),
    pytest.param(lambda: web.Response(status=504, text="Gateway Timeout"), {"retryable": True, "status": 504},
                 id="5xx is retryable"),
    pytest.param(lambda: web.Response(text="org,example)/ 20200101000000 200\n", content_type="text/plain"),
                 {"retryable": False}, id="invalid json is not retryable"),
])
async def test_an_upstream_failure_is_the_right_provider_error(
    answer: Answer, expected: dict[str, object], stub_api: StubApi, http: HttpClient
) -> None:
    base_url = await stub_api({CDX: answering(answer)})
    await raises_provider_error(collect(http, base_url, {"url": "https://ex.com/"}), **expected)
