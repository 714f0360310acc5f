"""The emulated Common Crawl index: collinfo.json, NDJSON lines with string values, the 404 "No Captures"
body, pywb parameters, redirects and charset spellings, and 503s for its knobs."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from aiohttp.test_utils import TestClient

from linkmeter.emulator.apis import commoncrawl as cc_api
from linkmeter.emulator.parts import api_app
from linkmeter.emulator.world import World
from tests.emulator.apis.conftest import ClientFactory

API = cc_api
SEED = 11
MOUNT = "/commoncrawl"
NEWEST = cc_api.CRAWLS[0][0]


def captured_url(world: World, crawl: str, predicate: Callable[[list[cc_api.Capture]], bool]) -> str:
    for i in range(3000):
        url = f"https://www.site{i}.org/"
        if predicate(cc_api.captures(world, crawl, url)):
            return url
    raise AssertionError("no such URL")


async def ndjson(client: TestClient[Any, Any], crawl: str, **params: str) -> list[dict[str, Any]]:
    response = await client.get(f"/commoncrawl/{crawl}-index", params={"output": "json", **params})
    assert response.status == 200 and response.content_type == "text/x-ndjson"
    return [json.loads(line) for line in (await response.text()).splitlines()]


async def test_collinfo_lists_the_crawls_newest_first_pointing_back_here(client: TestClient[Any, Any]) -> None:
    response = await client.get("/commoncrawl/collinfo.json")
    crawls = await response.json()

    root = str(client.make_url("/commoncrawl"))
    assert [crawl["id"] for crawl in crawls] == [crawl for crawl, _ in cc_api.CRAWLS]
    assert sorted((c["id"] for c in crawls), reverse=True) == [c["id"] for c in crawls]
    for crawl in crawls:
        assert crawl["cdx-api"] == f"{root}/{crawl['id']}-index" and crawl["timegate"] == f"{root}/{crawl['id']}/"
        assert crawl["name"].endswith(" Index")


async def test_index_lines_are_strings_in_the_api_shape(client: TestClient[Any, Any], world: World) -> None:
    url = captured_url(world, NEWEST, lambda found: len(found) >= 2)

    lines = await ndjson(client, NEWEST, url=url)

    assert len(lines) == len(cc_api.captures(world, NEWEST, url))
    start, end = cc_api.crawl_window(NEWEST)
    for line in lines:
        assert all(isinstance(value, str) for value in line.values())
        assert line["urlkey"] == "org,site" + url.split("site")[1].split(".")[0] + ")/"
        assert start.strftime("%Y%m%d") <= line["timestamp"][:8] <= end.strftime("%Y%m%d")
        assert line["filename"].startswith(f"crawl-data/{NEWEST}/segments/")
        assert {"url", "mime", "mime-detected", "status", "digest", "length", "offset"} <= line.keys()
        if line["status"] == "200":
            assert "languages" in line and "encoding" in line and "charset" not in line


async def test_redirect_captures_and_the_charset_spelling(client: TestClient[Any, Any], world: World) -> None:
    oldest = cc_api.CHARSET_KEY_CRAWL
    moved = captured_url(world, NEWEST, lambda found: any(c.redirect for c in found))
    ok = captured_url(world, oldest, lambda found: any(c.status == "200" for c in found))

    redirects = [line for line in await ndjson(client, NEWEST, url=moved) if line["status"] in ("301", "302")]
    old = [line for line in await ndjson(client, oldest, url=ok) if line["status"] == "200"]

    assert redirects and all(line["redirect"].startswith("https://") for line in redirects)
    assert all("languages" not in line for line in redirects)
    assert old and all("charset" in line and "encoding" not in line for line in old)


async def test_no_captures_is_a_404_with_a_message(client: TestClient[Any, Any], world: World) -> None:
    url = captured_url(world, NEWEST, lambda found: not found)

    response = await client.get(f"/commoncrawl/{NEWEST}-index", params={"url": url, "output": "json"})

    assert response.status == 404
    assert await response.json() == {"message": f"No Captures found for: {url}"}


async def test_errors_for_unknown_crawls_and_a_missing_url(client: TestClient[Any, Any]) -> None:
    unknown = await client.get("/commoncrawl/CC-MAIN-1999-01-index", params={"url": "https://a.example/"})
    missing = await client.get(f"/commoncrawl/{NEWEST}-index")

    assert unknown.status == 404 and "No Captures" not in (await unknown.json())["message"]
    assert missing.status == 400


async def test_filter_limit_fl_and_the_plain_format(client: TestClient[Any, Any], world: World) -> None:
    url = captured_url(world, NEWEST, lambda found: len(found) >= 2 and any(c.status == "200" for c in found))
    every = await ndjson(client, NEWEST, url=url)

    only_ok = await ndjson(client, NEWEST, url=url, filter="=status:200")
    first = await ndjson(client, NEWEST, url=url, limit="1")
    slim = await ndjson(client, NEWEST, url=url, fl="timestamp,status")
    plain = await client.get(f"/commoncrawl/{NEWEST}-index", params={"url": url})

    assert only_ok == [line for line in every if line["status"] == "200"]
    assert first == every[:1]
    assert slim == [{"timestamp": line["timestamp"], "status": line["status"]} for line in every]
    rows = (await plain.text()).splitlines()
    assert [row.split(" ", 2)[:2] for row in rows] == [[line["urlkey"], line["timestamp"]] for line in every]
    assert [json.loads(row.split(" ", 2)[2]) for row in rows] == every


def test_spam_is_rarely_captured_and_popular_sites_often(world: World) -> None:
    def share(hosts: list[str]) -> float:
        return sum(bool(cc_api.captures(world, NEWEST, f"https://{host}/")) for host in hosts) / len(hosts)

    spam = [f"spam{i}.example" for i in range(100)]
    popular = [f"site{i}.com" for i in range(800) if world.domain(f"site{i}.com").popularity > 0.6][:100]

    assert share(spam) < 0.15 < 0.7 < share(popular)


async def test_answers_depend_only_on_the_seed(aiohttp_client: ClientFactory) -> None:
    async def lines(seed: int) -> list[str]:
        client = await aiohttp_client(api_app(cc_api, World(seed)))
        found = []
        for i in range(30):
            response = await client.get(f"/{NEWEST}-index", params={"url": f"https://site{i}.com/",
                                                                   "output": "json"})
            found.append(await response.text())
        return found

    assert await lines(11) == await lines(11) != await lines(12)


def test_knob_answers_are_503s() -> None:
    assert cc_api.error_response(503).status == 503
    limited = cc_api.rate_limited_response(1.2)
    assert limited.status == 503 and limited.headers["Retry-After"] == "2"
