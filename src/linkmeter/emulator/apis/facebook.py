"""Emulated Facebook Graph API URL node: engagement counts by ``?id=`` or ``?ids=``, tokens, per-URL hourly limit."""

from __future__ import annotations

import hashlib
import json
import time
import weakref
from typing import Any

from aiohttp import web

from linkmeter.emulator.apis import KNOBS, WORLD, Sample
from linkmeter.emulator.world import World, url_host
from linkmeter.engine.urls import InvalidURL, normalise_url

NAME = "facebook"
DEMO_KEY = "linkmeter-demo-graph-token"
MAX_IDS = 50
URL_REQUESTS_PER_HOUR = 10  # "You are limited to 10 GET requests per URL, per app, per hour" (REFERENCE §7)

routes = web.RouteTableDef()

# Requests per URL in the current hour, per emulator (its World): the one piece of state this API keeps.
_url_hours: weakref.WeakKeyDictionary[World, dict[str, tuple[int, int]]] = weakref.WeakKeyDictionary()


@routes.get(r"/{version:v\d+\.\d+}/")
async def url_node(request: web.Request) -> web.Response:
    world = request.app[WORLD]
    token = _token(request)
    if not token:
        return graph_error(400, 104, "An access token is required to request this resource.")
    if token != DEMO_KEY:
        return graph_error(400, 190, "Invalid OAuth access token - Cannot parse access token")
    fields = {field.strip() for field in request.query.get("fields", "").split(",") if field.strip()}
    if "ids" in request.query:
        ids = [item for item in request.query["ids"].split(",") if item]
        if not ids:
            return graph_error(400, 100, "(#100) The parameter ids is required")
        if len(ids) > MAX_IDS:
            return graph_error(400, 100, f"(#100) Too many IDs. Maximum: {MAX_IDS}. Provided: {len(ids)}.")
    elif request.query.get("id"):
        ids = [request.query["id"]]
    else:
        return graph_error(400, 100, "Unsupported get request. Please read the Graph API documentation at "
                                     "https://developers.facebook.com/docs/graph-api")
    unknown = [item for item in ids if _normalised(item) is None]
    if unknown:
        return graph_error(404, 803, f"(#803) Some of the aliases you requested do not exist: {','.join(unknown)}")
    if request.app[KNOBS].published_limits and not _within_hourly_limit(world, ids):
        return throttled()
    nodes = {item: url_node_of(world, item, fields) for item in ids}
    body = nodes if "ids" in request.query else nodes[ids[0]]
    return web.json_response(body, headers={"X-App-Usage": _usage()})


def engagement(world: World, url: str) -> dict[str, int]:
    """The URL's engagement counts (http/https and a trailing slash count as one URL); spam gets almost none."""
    key = _normalised(url) or url
    facts = world.domain(url_host(key))
    rng = world.rng("facebook", key)
    counts = {"reaction_count": 0, "comment_count": 0, "share_count": 0, "comment_plugin_count": 0}
    if rng.random() > (0.04 if facts.spam else 0.2 + 0.7 * facts.popularity):
        return counts
    scale = 1 if facts.spam else 1 + 60 * facts.popularity
    shares = int(rng.paretovariate(1.2) * 8 * scale)
    counts["share_count"] = shares
    counts["reaction_count"] = int(shares * rng.uniform(0.5, 3.0))
    counts["comment_count"] = int(shares * rng.uniform(0.05, 0.6))
    if rng.random() < 0.05:
        counts["comment_plugin_count"] = rng.randint(1, 40)
    return counts


def url_node_of(world: World, url: str, fields: set[str]) -> dict[str, Any]:
    node: dict[str, Any] = {}
    if "engagement" in fields:
        node["engagement"] = engagement(world, url)
    node["id"] = url
    return node


def graph_error(status: int, code: int, message: str, *, headers: dict[str, str] | None = None,
                transient: bool = False) -> web.Response:
    """Graph's error envelope."""
    error: dict[str, Any] = {"message": message, "type": "OAuthException", "code": code,
                             "fbtrace_id": _trace_id(message)}
    if transient:
        error["is_transient"] = True
    return web.json_response({"error": error}, status=status, headers=headers)


def throttled() -> web.Response:
    """Graph's app throttling answer (code 4; HTTP status and body shape UNVERIFIED)."""
    usage = json.dumps({"call_count": 100, "total_cputime": 12, "total_time": 31})
    return graph_error(403, 4, "(#4) Application request limit reached", headers={"X-App-Usage": usage},
                       transient=True)


def rate_limited_response(retry_after: float) -> web.Response:
    return throttled()


def error_response(status: int) -> web.Response:
    return graph_error(status, 2, "An unexpected error has occurred. Please retry your request later.",
                       transient=True)


def _token(request: web.Request) -> str:
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() in ("bearer", "oauth") and value.strip():
        return value.strip()
    return request.query.get("access_token", "")


def _within_hourly_limit(world: World, ids: list[str]) -> bool:
    """Counts one request for each URL asked; False when one of them is past its 10 this hour."""
    hour = int(time.time() // 3600)
    seen = _url_hours.setdefault(world, {})
    if len(seen) > 100_000:  # forget past hours
        for key in [key for key, (when, _) in seen.items() if when != hour]:
            del seen[key]
    within = True
    for item in ids:
        key = _normalised(item) or item
        when, count = seen.get(key, (hour, 0))
        count = count + 1 if when == hour else 1
        seen[key] = (hour, count)
        within = within and count <= URL_REQUESTS_PER_HOUR
    return within


def _usage() -> str:
    """X-App-Usage (percentages of the app's hourly allowance): informational, the emulator enforces only the
    per-URL limit."""
    return json.dumps({"call_count": 1, "total_cputime": 1, "total_time": 1})


def _normalised(url: str) -> str | None:
    """The URL with scheme and trailing slash ignored; None for an id that is no http(s) URL."""
    if not url.startswith(("http://", "https://")):
        return None
    try:
        rest = normalise_url(url).split("://", 1)[1]
    except InvalidURL:
        return None
    location, sep, query = rest.partition("?")
    stem = location.rstrip("/")
    if "/" not in stem:
        stem += "/"  # the root keeps its slash
    return f"https://{stem}{sep}{query}"


def _trace_id(seed: str) -> str:
    return "A" + hashlib.sha256(seed.encode()).hexdigest()[:22]


def sample(world: World) -> Sample:
    """A request this API answers from its World (the same-seed test)."""
    return Sample("/v24.0/?id=https://www.site2.com/a/2&fields=engagement",
                  headers={"Authorization": f"Bearer {DEMO_KEY}"})
