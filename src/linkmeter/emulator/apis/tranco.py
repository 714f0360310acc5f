"""Emulated Tranco: the daily list (zip or CSV) of the World's ranked domains, list ids, and the rank API.

The synthetic world has no end, so its list cannot hold every domain: it holds the ranked ones among the
domains the demo and the benchmark use (the registered domains of the synthetic web's sites and sample
URLs, and ``site<N>.com``/``.org``/``.net`` for N < LIST_SITES), each with the World's own rank. The rank
API answers from the same list, so a domain's rank is the same by both routes. The World's ranks are drawn
per domain, so some domains share a rank (the real list's ranks are distinct): clients must read the rank
column, not the line number.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import io
import math
import re
import threading
import zipfile
from collections.abc import Iterator

from aiohttp import web

from linkmeter.emulator import answers
from linkmeter.emulator import web as synthetic_web
from linkmeter.emulator.apis import WORLD, Sample
from linkmeter.emulator.world import EPOCH, World, url_host
from linkmeter.engine.urls import registered_domain

NAME = "tranco"
LIST_SITES = 10_000
SITE_TLDS = ("com", "org", "net")
HISTORY_DAYS = 30
ID_ALPHABET = "23456789BCDFGHJKLMNPQRSTVWXYZ"
LIST_ID = re.compile(r"^[A-Z0-9]{4,6}$")
CSV_NAME = "top-1m.csv"

routes = web.RouteTableDef()
_BUILDING = threading.Lock()
_BUILT: set[int] = set()  # seeds whose list is built (in the lru caches below)


@routes.get("/top-1m.csv.zip")
async def latest_zip(request: web.Request) -> web.Response:
    await built(request.app[WORLD].seed)
    return _zip_response(request.app[WORLD])


@routes.get("/daily_list_id")
async def daily_list_id(request: web.Request) -> web.Response:
    try:
        date = dt.date.fromisoformat(request.query.get("date", ""))
    except ValueError:
        return web.Response(status=400, text="Invalid date: use YYYY-MM-DD")
    return web.Response(text=list_id(request.app[WORLD], date))


@routes.get("/download_daily/{list_id}")
async def download_daily(request: web.Request) -> web.Response:
    if not LIST_ID.match(request.match_info["list_id"]):
        return web.Response(status=404, text="List not found")
    await built(request.app[WORLD].seed)
    return _zip_response(request.app[WORLD])


@routes.get("/download/{list_id}/{size}")
async def download_csv(request: web.Request) -> web.Response:
    if not LIST_ID.match(request.match_info["list_id"]) or not request.match_info["size"].isdigit():
        return web.Response(status=404, text="List not found")
    size = int(request.match_info["size"])
    await built(request.app[WORLD].seed)
    return web.Response(body=list_csv(request.app[WORLD].seed)[: _csv_offset(request.app[WORLD].seed, size)],
                        content_type="text/csv")


@routes.get("/api/ranks/domain/{domain}")
async def ranks(request: web.Request) -> web.Response:
    world = request.app[WORLD]
    domain = request.match_info["domain"].strip().rstrip(".").lower()
    await built(world.seed)
    rank = rank_index(world.seed).get(domain)
    history = [] if rank is None else rank_history(world, domain, rank)
    return web.json_response({"domain": domain, "ranks": history})


def rate_limited_response(retry_after: float) -> web.Response:
    return web.Response(status=429, text="Too Many Requests",
                        headers={"Retry-After": str(max(1, math.ceil(retry_after)))})


def error_response(status: int) -> web.Response:
    return answers.html_error(status)


async def built(seed: int) -> None:
    """Build the list of ``seed`` once, off the event loop: it takes seconds of CPU, and a loop held that
    long answers every other emulated API late and all at once (a burst past their rate limits)."""
    if seed not in _BUILT:
        await asyncio.to_thread(_build, seed)


def _build(seed: int) -> None:
    with _BUILDING:
        list_zip(seed)
        rank_index(seed)
        _BUILT.add(seed)


def candidates() -> Iterator[str]:
    """The domains the emulated list considers, before dropping the unranked."""
    hosts = [url_host(url) for url in synthetic_web.SAMPLE_URLS]
    hosts += [*synthetic_web.OTHER_SITES, *synthetic_web.SPAM_SITES]
    yield from (registered_domain(host) for host in hosts)
    for n in range(LIST_SITES):
        for tld in SITE_TLDS:
            yield f"site{n}.{tld}"


@functools.lru_cache(maxsize=4)
def ranked(seed: int) -> tuple[tuple[int, str], ...]:
    """(rank, domain) of the list, by rank then name: the candidates the World ranks, with its ranks."""
    world = World(seed)
    found = {domain: world.domain(domain).rank for domain in candidates()}
    return tuple(sorted((rank, domain) for domain, rank in found.items() if rank is not None))


@functools.lru_cache(maxsize=4)
def rank_index(seed: int) -> dict[str, int]:
    return {domain: rank for rank, domain in ranked(seed)}


@functools.lru_cache(maxsize=4)
def list_csv(seed: int) -> bytes:
    """``top-1m.csv``: ``rank,domain`` lines ending in CRLF, no header."""
    return "".join(f"{rank},{domain}\r\n" for rank, domain in ranked(seed)).encode()


@functools.lru_cache(maxsize=4)
def list_zip(seed: int) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(CSV_NAME, list_csv(seed))
    return buffer.getvalue()


def list_id(world: World, date: dt.date) -> str:
    """The id of the list of ``date``: five characters, as Tranco's are (every day's list is the same)."""
    rng = world.rng(NAME, "list", date.isoformat())
    return "".join(rng.choice(ID_ALPHABET) for _ in range(5))


def rank_history(world: World, domain: str, rank: int) -> list[dict[str, object]]:
    """The rank API's history, newest first: the list's rank on the World's last day, earlier days near it."""
    rng = world.rng(NAME, "history", domain)
    last = EPOCH.date() - dt.timedelta(days=1)
    history: list[dict[str, object]] = [{"date": last.isoformat(), "rank": rank}]
    for back in range(1, HISTORY_DAYS):
        history.append({"date": (last - dt.timedelta(days=back)).isoformat(),
                        "rank": max(1, round(rank * rng.uniform(0.95, 1.05)))})
    return history


def _zip_response(world: World) -> web.Response:
    return web.Response(body=list_zip(world.seed), content_type="application/zip",
                        headers={"Content-Disposition": "attachment; filename=tranco.zip"})


def _csv_offset(seed: int, size: int) -> int:
    """Where the first ``size`` lines of the CSV end."""
    data = list_csv(seed)
    offset = 0
    for _ in range(size):
        found = data.find(b"\n", offset)
        if found < 0:
            return len(data)
        offset = found + 1
    return offset


def sample(world: World) -> Sample:
    """A request this API answers from its World (the same-seed test)."""
    return Sample("/api/ranks/domain/site1.com")
