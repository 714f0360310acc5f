"""Emulated Wayback Machine: the CDX server (/cdx/search/cdx) and the availability API, over its captures."""

from __future__ import annotations

import base64
import hashlib
import json
import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from aiohttp import web

from linkmeter.emulator import answers
from linkmeter.emulator.apis import WORLD, Sample
from linkmeter.emulator.world import EPOCH, World, url_host
from linkmeter.engine.urls import InvalidURL, normalise_url

NAME = "wayback"
FIELDS = ("urlkey", "timestamp", "original", "mimetype", "statuscode", "digest", "length")
SNAPSHOT_BASE = "http://web.archive.org/web"
# Fills a partial 1-14 digit timestamp up to a valid date.
TIMESTAMP_FILL = "19700101000000"

routes = web.RouteTableDef()


@dataclass(frozen=True, slots=True)
class Row:
    urlkey: str
    timestamp: str
    original: str
    mimetype: str
    statuscode: str
    digest: str
    length: str

    def field(self, name: str) -> str:
        value: str = getattr(self, name)
        return value


@routes.get("/cdx/search/cdx")
async def cdx(request: web.Request) -> web.Response:
    return _cdx(request.app[WORLD], request)


@routes.get("/wayback/available")
async def available(request: web.Request) -> web.Response:
    return _available(request.app[WORLD], request)


def error_response(status: int) -> web.Response:
    """The Wayback Machine's 5xx: its nginx front end's HTML page."""
    return answers.html_error(status)


def rate_limited_response(retry_after: float) -> web.Response:
    return web.Response(
        status=429,
        text="<html><head><title>429 Too Many Requests</title></head>"
        "<body><h1>429 Too Many Requests</h1></body></html>\n",
        content_type="text/html",
        headers={"Retry-After": str(max(1, math.ceil(retry_after)))},
    )


def captures(world: World, url: str) -> list[datetime]:
    """Capture times of ``url`` (normalised), oldest first; empty when never archived."""
    facts = world.domain(url_host(url))
    rng = world.rng("wayback", url)
    if rng.random() > 0.35 + 0.6 * facts.popularity:
        return []
    count = 1 + int(rng.paretovariate(1.2) * (1 + 20 * facts.popularity))
    count = min(count, 400)
    newest = EPOCH - timedelta(days=rng.randint(0, 30))
    span_days = max(1, (newest - facts.registration).days)
    return sorted(newest - timedelta(seconds=rng.randint(0, span_days * 86400)) for _ in range(count))


def capture_key(url: str) -> str | None:
    """The World key of a CDX url parameter: normalised, with the scheme ignored as SURT ordering does."""
    text = url.strip()
    if "://" not in text:
        text = "http://" + text
    try:
        normalised = normalise_url(text)
    except InvalidURL:
        return None
    return "https://" + normalised.split("://", 1)[1]


def rows_for(world: World, url: str) -> list[Row]:
    """Every capture of ``url``, oldest first."""
    key = capture_key(url)
    if key is None:
        return []
    return [_row(world, key, when) for when in captures(world, key)]


def surt(key: str) -> str:
    """The SURT form CDX sorts by: reversed host without www, then path and query, lower-cased."""
    rest = key.split("://", 1)[1]
    host, slash, tail = rest.partition("/")
    labels = host.split(".")
    if labels[0] == "www" and len(labels) > 2:
        labels = labels[1:]
    return (",".join(reversed(labels)) + ")" + slash + tail).lower()


def _row(world: World, key: str, when: datetime) -> Row:
    timestamp = when.strftime("%Y%m%d%H%M%S")
    rng = world.rng("wayback-row", key, timestamp)
    roll = rng.random()
    status = "200" if roll < 0.85 else "301" if roll < 0.93 else "302" if roll < 0.97 else "404"
    scheme = "https" if rng.random() < 0.7 else "http"
    content = hashlib.sha1(f"{key}:{status}:{rng.randint(0, 5)}".encode()).digest()
    return Row(
        urlkey=surt(key),
        timestamp=timestamp,
        original=f"{scheme}://{key.split('://', 1)[1]}",
        mimetype="text/html",
        statuscode=status,
        digest=base64.b32encode(content).decode(),
        length=str(rng.randint(400, 90_000)),
    )


def _cdx(world: World, request: web.Request) -> web.Response:
    url = request.query.get("url", "")
    if not url:
        return _text_error(400, "org.archive.wayback.exception.BadQueryException: Missing url param")
    fields = [name.strip() for name in request.query.get("fl", ",".join(FIELDS)).split(",") if name.strip()]
    unknown = [name for name in fields if name not in FIELDS]
    if unknown:
        return _text_error(400, f"org.archive.wayback.exception.BadQueryException: Invalid field {unknown[0]}")
    rows = rows_for(world, url)
    start, end = request.query.get("from", ""), request.query.get("to", "")
    if start.isdigit():
        rows = [row for row in rows if row.timestamp[: len(start)] >= start]
    if end.isdigit():
        rows = [row for row in rows if row.timestamp[: len(end)] <= end]
    try:
        limit = int(request.query.get("limit", "0"))
    except ValueError:
        limit = 0
    if limit > 0:
        rows = rows[:limit]
    elif limit < 0:
        rows = rows[limit:]
    table = [[row.field(name) for name in fields] for row in rows]
    if request.query.get("output", "") == "json":
        body = json.dumps([fields, *table] if table else [], separators=(",", ":")) + "\n"
        return web.Response(text=body, content_type="application/json")
    return web.Response(text="".join(" ".join(line) + "\n" for line in table), content_type="text/plain")


def _available(world: World, request: web.Request) -> web.Response:
    url = request.query.get("url", "")
    rows = rows_for(world, url)
    if not rows:
        return web.json_response({"url": url, "archived_snapshots": {}})
    wanted = _padded(request.query.get("timestamp", ""))
    if wanted is None:
        closest = rows[-1]
    else:
        closest = min(rows, key=lambda row: abs((_when(row.timestamp) - wanted).total_seconds()))
    return web.json_response({
        "url": url,
        "archived_snapshots": {
            "closest": {
                "status": closest.statuscode,
                "available": True,
                "url": f"{SNAPSHOT_BASE}/{closest.timestamp}/{closest.original}",
                "timestamp": closest.timestamp,
            }
        },
    })


def _padded(timestamp: str) -> datetime | None:
    if not timestamp.isdigit() or len(timestamp) > 14:
        return None
    try:
        return _when(timestamp + TIMESTAMP_FILL[len(timestamp):])
    except ValueError:
        return None


def _when(timestamp: str) -> datetime:
    return datetime.strptime(timestamp, "%Y%m%d%H%M%S")


def _text_error(status: int, message: str) -> web.Response:
    return web.Response(status=status, text=message + "\n", content_type="text/plain")


def sample(world: World) -> Sample:
    """A request this API answers from its World (the same-seed test)."""
    return Sample("/cdx/search/cdx?url=https://www.site1.com/page&output=json")
