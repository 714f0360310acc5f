"""Emulated PhishTank checkurl: JSON or XML answers, per-client request counts in X-Request-* headers, 509."""

from __future__ import annotations

import base64
import binascii
import math
import time
import weakref
from dataclasses import dataclass
from datetime import timedelta
from html import escape
from typing import Any

from aiohttp import web

from linkmeter.emulator import answers
from linkmeter.emulator.apis import KNOBS, WORLD, Sample
from linkmeter.emulator.apis._threats import CLEAN, held
from linkmeter.emulator.world import EPOCH, World, url_host

NAME = "phishtank"
DEMO_KEY = "linkmeter-emulator-demo-app-key"
# PhishTank is a phishing list: most phishing domains, a few others, hardly any clean site.
SHARES = {"phishing": 0.7, "malware": 0.03, "spam": 0.05, CLEAN: 0.0005}
INTERVAL = 300  # seconds of one counting window, as X-Request-Limit-Interval says
ANONYMOUS_LIMIT = 100  # requests per window without an app_key (the real numbers are not published)
KEYED_LIMIT = 10_000  # with one
GENERIC_AGENTS = ("python-requests", "python-urllib", "aiohttp", "curl/", "wget/", "java/", "go-http-client")
DETAIL_PAGE = "http://www.phishtank.com/phish_detail.php?phish_id={}"


@dataclass(slots=True)
class _Window:
    started: float
    count: int = 0


# Request counts per client, per emulated world (one per emulator, one per test's app).
_WINDOWS: weakref.WeakKeyDictionary[World, dict[str, _Window]] = weakref.WeakKeyDictionary()

routes = web.RouteTableDef()


@routes.post("/checkurl/")
async def checkurl(request: web.Request) -> web.Response:
    form = await request.post()
    app_key = str(form.get("app_key", ""))
    agent = request.headers.get("User-Agent", "")
    limit, count = count_request(request.app[WORLD], _client(request, app_key), app_key, agent)
    if not request.app[KNOBS].published_limits:
        count = 1  # not counted (the benchmark's emulator): never near the limit
    headers = limit_headers(limit, count)
    if count > limit:
        return _over_limit(headers)
    url = _decoded(str(form.get("url", "")).strip())
    world = request.app[WORLD]
    if str(form.get("format", "xml")).lower() == "json":
        if not url:
            return web.json_response({"meta": _meta(world, "error", url),
                                      "errortext": "You must supply a URL to use this function."}, headers=headers)
        return web.json_response({"meta": _meta(world, "success", url), "results": lookup(world, url)}, headers=headers)
    return web.Response(text=_xml(world, lookup(world, url)) if url else _xml_error(), content_type="text/xml",
                        headers=headers)


def rate_limited_response(retry_after: float) -> web.Response:
    """The knobs' rate limit as PhishTank's own: 509, the interval being the wait."""
    return _over_limit({"X-Request-Limit-Interval": f"{max(1, math.ceil(retry_after))} Seconds",
                        "X-Request-Limit": str(ANONYMOUS_LIMIT), "X-Request-Count": str(ANONYMOUS_LIMIT + 1)})


def error_response(status: int) -> web.Response:
    return answers.html_error(status)


def limit_for(app_key: str, agent: str) -> int:
    """The client's requests per window: higher with an app key, lower for a blank or generic User-Agent."""
    limit = KEYED_LIMIT if app_key else ANONYMOUS_LIMIT
    lowered = agent.strip().lower()
    return limit // 10 if not lowered or lowered.startswith(GENERIC_AGENTS) else limit


def count_request(world: World, client: str, app_key: str, agent: str, now: float | None = None) -> tuple[int, int]:
    """Counts one request of ``client``: (its limit, its requests in the current window, this one included)."""
    now = time.monotonic() if now is None else now
    windows = _WINDOWS.setdefault(world, {})
    window = windows.get(client)
    if window is None or now - window.started >= INTERVAL:
        window = windows[client] = _Window(now)
    window.count += 1
    return limit_for(app_key, agent), window.count


def limit_headers(limit: int, count: int) -> dict[str, str]:
    return {"X-Request-Limit-Interval": f"{INTERVAL} Seconds", "X-Request-Limit": str(limit),
            "X-Request-Count": str(count)}


def lookup(world: World, url: str) -> dict[str, Any]:
    """The ``results`` object for ``url``: any URL of a domain PhishTank holds is in its database."""
    facts = held(world, NAME, url_host(url), SHARES) if "://" in url else None
    if facts is None:
        return {"url": url, "in_database": False}
    rng = world.rng(NAME, "phish", url)
    phish_id = rng.randint(1_000_000, 9_000_000)
    verified = rng.random() < 0.9
    submitted = facts.registration + timedelta(days=rng.randrange(max(1, (EPOCH - facts.registration).days)))
    return {
        "url": url,
        "in_database": True,
        # Clients have seen both a string and a number here.
        "phish_id": str(phish_id) if rng.random() < 0.5 else phish_id,
        "phish_detail_page": DETAIL_PAGE.format(phish_id),
        "verified": verified,
        "verified_at": (submitted + timedelta(hours=rng.randint(1, 48))).strftime("%Y-%m-%dT%H:%M:%S+00:00")
        if verified else None,
        "valid": verified and rng.random() < 0.6,
    }


def _client(request: web.Request, app_key: str) -> str:
    """Who is counted: the app key, else the address and User-Agent."""
    return f"key:{app_key}" if app_key else f"{request.remote}|{request.headers.get('User-Agent', '')}"


def _decoded(url: str) -> str:
    """``url`` may be sent urlencoded (already decoded by the form parser) or base64 encoded."""
    if not url or "://" in url:
        return url
    try:
        decoded = base64.b64decode(url, validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return url
    return decoded if "://" in decoded else url


def _meta(world: World, status: str, url: str) -> dict[str, str]:
    rng = world.rng(NAME, "meta", url)
    return {"timestamp": EPOCH.strftime("%Y-%m-%dT%H:%M:%S+00:00"), "serverid": f"{rng.getrandbits(32):08x}",
            "status": status, "requestid": f"{rng.getrandbits(32):08x}.{rng.getrandbits(32):08x}"}


def _over_limit(headers: dict[str, str]) -> web.Response:
    return web.Response(status=509, headers=headers, content_type="text/html",
                        text="<html><body><h1>509 Bandwidth Limit Exceeded</h1><p>You have exceeded the request "
                             "rate limit for this method.</p></body></html>\n")


def _xml(world: World, results: dict[str, Any]) -> str:
    fields = "".join(f"<{name}>{escape(_xml_value(value))}</{name}>" for name, value in results.items())
    meta_fields = _meta(world, "success", str(results["url"]))
    meta = "".join(f"<{name}>{escape(value)}</{name}>" for name, value in meta_fields.items())
    return (f'<?xml version="1.0" encoding="utf-8"?>\n<response><meta>{meta}</meta>'
            f"<results><url0>{fields}</url0></results></response>\n")


def _xml_error() -> str:
    return ('<?xml version="1.0" encoding="utf-8"?>\n<response><errortext>You must supply a URL to use this '
            "function.</errortext></response>\n")


def _xml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


def sample(world: World) -> Sample:
    """A request this API answers from its World (the same-seed test)."""
    return Sample("/checkurl/", "POST", headers={"User-Agent": "phishtank/linkmeter-tests"},
                  data={"url": "https://phish-login.example/", "format": "json", "app_key": DEMO_KEY})
