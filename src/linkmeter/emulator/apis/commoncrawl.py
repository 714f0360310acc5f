"""Emulated Common Crawl URL index: collinfo.json and a pywb CDX API per crawl (NDJSON), with its 404
"No Captures found" and its 503 "slow down"."""

from __future__ import annotations

import base64
import hashlib
import json
import math
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from aiohttp import web

from linkmeter.emulator import answers
from linkmeter.emulator.apis import WORLD, Sample
from linkmeter.emulator.apis.wayback import capture_key, surt
from linkmeter.emulator.world import World, url_host

NAME = "commoncrawl"
# The newest crawls before the emulator's EPOCH (2026-01-01), newest first: (id, name).
CRAWLS = (
    ("CC-MAIN-2025-51", "December 2025 Index"),
    ("CC-MAIN-2025-47", "November 2025 Index"),
    ("CC-MAIN-2025-43", "October 2025 Index"),
    ("CC-MAIN-2025-38", "September 2025 Index"),
    ("CC-MAIN-2025-33", "August 2025 Index"),
    ("CC-MAIN-2025-30", "July 2025 Index"),
)
# The oldest crawl names the charset "charset", as the raw cdx files do; the others "encoding" (REFERENCE §12).
CHARSET_KEY_CRAWL = CRAWLS[-1][0]
NDJSON = "text/x-ndjson"
LANGUAGES = (("eng",), ("eng",), ("eng",), ("eng", "fra"), ("deu",), ("spa",), ("eng", "deu"), ("jpn",))
ENCODINGS = {"latin1.example": "ISO-8859-1", "cp1252.example": "windows-1252"}

routes = web.RouteTableDef()


@dataclass(frozen=True, slots=True)
class Capture:
    url: str
    timestamp: str
    status: str
    redirect: str | None
    length: int
    languages: tuple[str, ...]
    encoding: str


@routes.get("/collinfo.json")
async def collinfo(request: web.Request) -> web.Response:
    root = f"{request.scheme}://{request.host}{request.path[: -len('/collinfo.json')]}"
    return web.json_response([
        {"id": crawl, "name": name, "timegate": f"{root}/{crawl}/", "cdx-api": f"{root}/{crawl}-index",
         "from": crawl_window(crawl)[0].strftime("%Y-%m-%dT%H:%M:%S"),
         "to": crawl_window(crawl)[1].strftime("%Y-%m-%dT%H:%M:%S")}
        for crawl, name in CRAWLS])


@routes.get("/{crawl:CC-MAIN-[0-9]+-[0-9]+}-index")
async def index(request: web.Request) -> web.Response:
    crawl = request.match_info["crawl"]
    if crawl not in dict(CRAWLS):
        return web.json_response({"message": f"No such collection: {crawl}"}, status=404)
    url = request.query.get("url", "")
    if not url:
        return web.json_response({"message": "The \"url\" param is required"}, status=400)
    found = [line for line in lines_for(request.app[WORLD], crawl, url) if _kept(line, request.query)]
    limit = request.query.get("limit", "")
    if limit.isdigit():
        found = found[: int(limit)]
    if not found:
        return web.json_response({"message": f"No Captures found for: {url}"}, status=404)
    fields = [name for name in request.query.get("fl", "").split(",") if name]
    if fields:
        found = [{name: line[name] for name in fields if name in line} for line in found]
    if request.query.get("output", "") == "json":
        return web.Response(text="".join(json.dumps(line) + "\n" for line in found), content_type=NDJSON)
    return web.Response(text="".join(f"{line.get('urlkey', '')} {line.get('timestamp', '')} {json.dumps(line)}\n"
                                     for line in found), content_type="text/plain")


def error_response(status: int) -> web.Response:
    return answers.html_error(status)


def rate_limited_response(retry_after: float) -> web.Response:
    """The index server does not answer 429: under load it answers 503 (REFERENCE §12)."""
    response = answers.html_error(503)
    response.headers["Retry-After"] = str(max(1, math.ceil(retry_after)))
    return response


def crawl_window(crawl: str) -> tuple[datetime, datetime]:
    """The two weeks a crawl ran, ending the Monday of the ISO week its id names."""
    year, week = (int(part) for part in crawl.rsplit("-", 2)[1:])
    end = datetime.combine(date.fromisocalendar(year, week, 1), datetime.min.time(), UTC)
    return end - timedelta(days=13), end


def captures(world: World, crawl: str, url: str) -> list[Capture]:
    """Captures of ``url`` (any spelling of its scheme) in one crawl, oldest first."""
    key = capture_key(url)
    if key is None:
        return []
    host = url_host(key)
    facts = world.domain(host)
    rng = world.rng("commoncrawl", crawl, key)
    root = key.split("://", 1)[1].rstrip("/") == host
    chance = 0.04 if facts.spam else min(0.95, 0.1 + 0.7 * facts.popularity + (0.2 if root else 0.0))
    if not facts.registered or rng.random() >= chance:
        return []
    start, end = crawl_window(crawl)
    found = []
    for _ in range(1 + (rng.random() < facts.popularity) + (rng.random() < facts.popularity / 3)):
        when = start + (end - start) * rng.random()
        roll = rng.random()
        status = "200" if roll < 0.86 else "301" if roll < 0.92 else "302" if roll < 0.95 else "404"
        rest = key.split("://", 1)[1]
        redirect = None
        if status in ("301", "302"):
            redirect = f"https://www.{rest}" if not host.startswith("www.") else f"https://{rest.removeprefix('www.')}"
        found.append(Capture(
            url=("https://" if rng.random() < 0.8 else "http://") + rest,
            timestamp=when.strftime("%Y%m%d%H%M%S"),
            status=status,
            redirect=redirect,
            length=rng.randint(400, 4000) if status != "200" else rng.randint(3_000, 90_000),
            languages=rng.choice(LANGUAGES),
            encoding=ENCODINGS.get(facts.domain, "UTF-8"),
        ))
    return sorted(found, key=lambda c: c.timestamp)


def lines_for(world: World, crawl: str, url: str) -> list[dict[str, Any]]:
    """The index lines of ``url`` in ``crawl``, in the API's shape (every value a string)."""
    key = capture_key(url)
    return [] if key is None else [_line(crawl, surt(key), capture) for capture in captures(world, crawl, url)]


def _line(crawl: str, urlkey: str, capture: Capture) -> dict[str, Any]:
    digest = base64.b32encode(hashlib.sha1(f"{capture.url}:{capture.timestamp}".encode()).digest()).decode()
    segment = int(capture.timestamp[:10]) % 1_000_000
    line: dict[str, Any] = {
        "urlkey": urlkey,
        "timestamp": capture.timestamp,
        "url": capture.url,
        "mime": "text/html",
        "mime-detected": "text/html",
        "status": capture.status,
        "digest": digest,
        "length": str(capture.length),
        "offset": str(int(digest[:6], 36) * 97 % 1_000_000_000),
        "filename": f"crawl-data/{crawl}/segments/1764{segment:06d}.{segment % 97}/"
                    f"{'warc' if capture.status == '200' else 'crawldiagnostics'}/{crawl}-"
                    f"{capture.timestamp}-{segment % 80_000:05d}.warc.gz",
    }
    if capture.redirect:
        line["redirect"] = capture.redirect
    if capture.status == "200":
        line["languages"] = ",".join(capture.languages)
        line["charset" if crawl == CHARSET_KEY_CRAWL else "encoding"] = capture.encoding
    return line


def _kept(line: dict[str, Any], query: Any) -> bool:
    """pywb's ``filter=[!][=]field:value`` (``=``: exact, else a regular-expression-free substring match)."""
    for spec in query.getall("filter", []):
        negate = spec.startswith("!")
        spec = spec.lstrip("!")
        exact = spec.startswith("=")
        field, _, value = spec.lstrip("=").partition(":")
        actual = str(line.get(field, ""))
        hit = actual == value if exact else value in actual
        if hit == negate:
            return False
    return True


def sample(world: World) -> Sample:
    """A request this API answers from its World (the same-seed test)."""
    return Sample("/collinfo.json")
