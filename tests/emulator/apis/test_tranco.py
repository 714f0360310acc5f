"""The emulated Tranco: the list's zip and CSV, list ids, and a rank API that agrees with the list and the World."""

from __future__ import annotations

import io
import zipfile
from typing import Any

from aiohttp.test_utils import TestClient

from linkmeter.emulator.apis import tranco as tranco_api
from linkmeter.emulator.web import SAMPLE_URLS
from linkmeter.emulator.world import World, url_host
from linkmeter.engine.urls import registered_domain

API = tranco_api
MOUNT = "/tranco"
SEED = 2


def csv_lines(body: bytes) -> list[tuple[int, str]]:
    with zipfile.ZipFile(io.BytesIO(body)) as archive:
        assert archive.namelist() == ["top-1m.csv"]
        text = archive.read("top-1m.csv").decode()
    assert text.endswith("\r\n") and "\r\n\r\n" not in text
    return [(int(rank), domain) for rank, domain in (line.split(",") for line in text.split("\r\n")[:-1])]


async def test_the_daily_zip_lists_ranked_domains_with_the_worlds_ranks(client: TestClient[Any, Any],
                                                                        world: World) -> None:
    response = await client.get("/tranco/top-1m.csv.zip")

    assert response.status == 200 and response.content_type == "application/zip"
    lines = csv_lines(await response.read())
    assert len(lines) > 5000
    assert lines == sorted(lines)
    for rank, domain in lines[::50]:
        assert world.domain(domain).rank == rank and not world.domain(domain).spam
    listed = {domain for _, domain in lines}
    for url in SAMPLE_URLS:  # the demo's domains are in the list whenever the World ranks them
        domain = registered_domain(url_host(url))
        assert (domain in listed) == (world.domain(domain).rank is not None), domain
    assert not any(domain.startswith(("spam", "phish", "malware")) for domain in listed)


async def test_a_list_id_per_date_and_the_list_by_its_id(client: TestClient[Any, Any]) -> None:
    first = await client.get("/tranco/daily_list_id", params={"date": "2025-12-30"})
    again = await client.get("/tranco/daily_list_id", params={"date": "2025-12-30"})
    other = await client.get("/tranco/daily_list_id", params={"date": "2025-12-29"})
    list_id = await first.text()

    assert first.status == 200 and first.content_type == "text/plain"
    assert tranco_api.LIST_ID.match(list_id) and list_id == await again.text() != await other.text()
    zipped = await client.get(f"/tranco/download_daily/{list_id}")
    latest = await client.get("/tranco/top-1m.csv.zip")
    assert zipped.status == 200 and await zipped.read() == await latest.read()


async def test_bad_dates_and_unknown_ids(client: TestClient[Any, Any]) -> None:
    assert (await client.get("/tranco/daily_list_id", params={"date": "yesterday"})).status == 400
    assert (await client.get("/tranco/daily_list_id")).status == 400
    assert (await client.get("/tranco/download_daily/not-an-id")).status == 404
    assert (await client.get("/tranco/download/x y/10")).status == 404


async def test_the_csv_download_gives_the_first_n_lines(client: TestClient[Any, Any]) -> None:
    response = await client.get("/tranco/download/AB3CD/10")

    assert response.status == 200
    text = await response.text()
    assert text.count("\r\n") == 10
    assert text.encode() == tranco_api.list_csv(SEED)[: len(text.encode())]


async def test_the_rank_api_agrees_with_the_list_newest_first(client: TestClient[Any, Any]) -> None:
    rank, domain = tranco_api.ranked(SEED)[100]

    body = await (await client.get(f"/tranco/api/ranks/domain/{domain.upper()}")).json()

    assert body["domain"] == domain
    assert body["ranks"][0] == {"date": "2025-12-31", "rank": rank}
    dates = [entry["date"] for entry in body["ranks"]]
    assert dates == sorted(dates, reverse=True) and len(dates) == tranco_api.HISTORY_DAYS


async def test_an_unlisted_domain_has_no_ranks(client: TestClient[Any, Any]) -> None:
    for domain in ("spam-casino.example", "unlisted-somewhere.org", "site99999.com"):
        body = await (await client.get(f"/tranco/api/ranks/domain/{domain}")).json()
        assert body == {"domain": domain, "ranks": []}


def test_knob_answers() -> None:
    limited = tranco_api.rate_limited_response(1.2)

    assert limited.status == 429 and limited.headers["Retry-After"] == "2"
    assert tranco_api.error_response(503).status == 503
