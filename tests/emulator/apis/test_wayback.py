"""The emulated Wayback Machine: CDX JSON rows and parameters, and the availability API."""

from __future__ import annotations

from typing import Any

from aiohttp.test_utils import TestClient

from linkmeter.emulator.apis import wayback as wayback_api
from linkmeter.emulator.world import World

API = wayback_api
SEED = 9


def find_url(world: World, *, archived: bool, minimum: int = 1) -> str:
    for i in range(5000):
        url = f"https://www.site{i}.com/page"
        captures = wayback_api.captures(world, url)
        if (len(captures) >= minimum) if archived else not captures:
            return url
    raise AssertionError("no such URL in this world")


async def cdx(client: TestClient[Any, Any], **params: str) -> Any:
    response = await client.get("/cdx/search/cdx", params={"output": "json", **params})
    assert response.status == 200
    return await response.json()


async def test_json_rows_have_a_header_and_string_values(client: TestClient[Any, Any], world: World) -> None:
    url = find_url(world, archived=True, minimum=3)
    captures = wayback_api.captures(world, url)

    rows = await cdx(client, url=url)

    assert rows[0] == list(wayback_api.FIELDS)
    assert len(rows) == len(captures) + 1
    assert all(isinstance(value, str) for row in rows for value in row)
    assert [row[1] for row in rows[1:]] == [when.strftime("%Y%m%d%H%M%S") for when in captures]
    host = url.split("/")[2]  # www.siteN.com: SURT drops www and reverses the labels
    assert {row[0] for row in rows[1:]} == {"com," + host.split(".")[1] + ")/page"}
    assert all(row[4] in {"200", "301", "302", "404"} and len(row[5]) == 32 for row in rows[1:])


async def test_fl_limit_from_and_to(client: TestClient[Any, Any], world: World) -> None:
    url = find_url(world, archived=True, minimum=4)
    stamps = [when.strftime("%Y%m%d%H%M%S") for when in wayback_api.captures(world, url)]

    only = await cdx(client, url=url, fl="timestamp,statuscode")
    first = await cdx(client, url=url, fl="timestamp", limit="1")
    last_two = await cdx(client, url=url, fl="timestamp", limit="-2")
    windowed = await cdx(client, url=url, fl="timestamp", **{"from": stamps[1], "to": stamps[-2]})
    by_year = await cdx(client, url=url, fl="timestamp", **{"from": stamps[-1][:4]})

    assert only[0] == ["timestamp", "statuscode"] and all(len(row) == 2 for row in only)
    assert first == [["timestamp"], [stamps[0]]]
    assert last_two == [["timestamp"], [stamps[-2]], [stamps[-1]]]
    assert [row[0] for row in windowed[1:]] == stamps[1:-1]
    assert [row[0] for row in by_year[1:]] == [s for s in stamps if s[:4] >= stamps[-1][:4]]


async def test_the_scheme_does_not_matter(client: TestClient[Any, Any], world: World) -> None:
    url = find_url(world, archived=True)
    bare = url.removeprefix("https://")

    assert await cdx(client, url=url) == await cdx(client, url="http://" + bare) == await cdx(client, url=bare)


async def test_zero_captures_is_an_empty_list(client: TestClient[Any, Any], world: World) -> None:
    response = await client.get("/cdx/search/cdx", params={"url": find_url(world, archived=False),
                                                           "output": "json"})

    assert response.status == 200 and (await response.text()).strip() == "[]"


async def test_plain_text_output(client: TestClient[Any, Any], world: World) -> None:
    url = find_url(world, archived=True, minimum=2)

    response = await client.get("/cdx/search/cdx", params={"url": url, "fl": "timestamp,statuscode"})

    lines = (await response.text()).splitlines()
    assert len(lines) == len(wayback_api.captures(world, url))
    assert all(len(line.split(" ")) == 2 for line in lines)


async def test_bad_queries_are_400(client: TestClient[Any, Any]) -> None:
    missing = await client.get("/cdx/search/cdx", params={"output": "json"})
    bad_field = await client.get("/cdx/search/cdx", params={"url": "ex.com", "fl": "nope"})

    assert missing.status == bad_field.status == 400


async def test_availability_api(client: TestClient[Any, Any], world: World) -> None:
    url = find_url(world, archived=True, minimum=2)
    stamps = [when.strftime("%Y%m%d%H%M%S") for when in wayback_api.captures(world, url)]

    latest = await (await client.get("/wayback/available", params={"url": url})).json()
    oldest = await (await client.get("/wayback/available", params={"url": url, "timestamp": "1990"})).json()
    none = await (await client.get("/wayback/available",
                                   params={"url": find_url(world, archived=False)})).json()

    closest = latest["archived_snapshots"]["closest"]
    assert latest["url"] == url
    assert closest["timestamp"] == stamps[-1] and closest["available"] is True
    assert isinstance(closest["status"], str)
    assert closest["url"].startswith(f"http://web.archive.org/web/{stamps[-1]}/")
    assert oldest["archived_snapshots"]["closest"]["timestamp"] == stamps[0]
    assert none["archived_snapshots"] == {}


def test_rate_limited_response() -> None:
    response = wayback_api.rate_limited_response(10.0)

    assert response.status == 429 and response.headers["Retry-After"] == "10"
    assert response.content_type == "text/html"
