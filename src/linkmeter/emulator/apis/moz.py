"""Emulated Moz Links API v2: ``url_metrics`` for up to 50 targets, behind HTTP Basic auth."""

from __future__ import annotations

import base64
import binascii
import json
import math
from datetime import timedelta
from typing import Any

from aiohttp import web

from linkmeter.emulator import answers
from linkmeter.emulator.apis import WORLD, Sample
from linkmeter.emulator.world import EPOCH, World, url_host

NAME = "moz"
DEMO_KEY = "mozscape-linkmeterdemo:linkmeter-demo-secret-key"  # access_id:secret_key
MAX_TARGETS = 50

routes = web.RouteTableDef()


@routes.post("/v2/url_metrics")
async def url_metrics(request: web.Request) -> web.Response:
    if credentials(request.headers.get("Authorization", "")) != DEMO_KEY:
        return error(401, "Authentication failed: check your Access ID and Secret Key.")
    try:
        body = json.loads(await request.read())
    except ValueError:
        return error(400, "The request body is not valid JSON.")
    targets = body.get("targets") if isinstance(body, dict) else None
    if not isinstance(targets, list) or not targets or not all(isinstance(t, str) and t.strip() for t in targets):
        return error(400, "targets must be a non-empty list of URLs.")
    if len(targets) > MAX_TARGETS:
        return error(400, f"targets may hold at most {MAX_TARGETS} URLs.")
    world = request.app[WORLD]
    return web.json_response({"results": [metrics(world, target) for target in targets]})


def credentials(header: str) -> str | None:
    """``access_id:secret_key`` of a Basic Authorization header; None when there is none."""
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        return base64.b64decode(encoded.strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None


def error(status: int, message: str, headers: dict[str, str] | None = None) -> web.Response:
    """Moz's error body (the v1 shape clients show; v2's is UNVERIFIED)."""
    return web.json_response({"status": str(status), "error_message": message}, status=status, headers=headers)


def rate_limited_response(retry_after: float) -> web.Response:
    return error(429, "Too many requests: slow down.", headers={"Retry-After": str(max(1, math.ceil(retry_after)))})


def error_response(status: int) -> web.Response:
    return error(status, answers.reason(status))


def page_of(target: str) -> tuple[str, str]:
    """(host, page) of a target as Moz names them: the page without its scheme, "/" for a bare host."""
    rest = target.strip().split("://", 1)[-1]
    host = url_host(target.strip() if "://" in target else "http://" + rest)
    path = rest[len(rest.split("/", 1)[0]):].split("#", 1)[0]
    return host, host + (path or "/")


def metrics(world: World, target: str) -> dict[str, Any]:
    """One result in Moz's shape. Domain Authority, spam score and root-domain links are the registered
    domain's (from its popularity: spam domains are weak and spammy); page figures are the page's own."""
    host, page = page_of(target)
    facts = world.domain(host)
    site = world.rng(NAME, facts.domain)
    rng = world.rng(NAME, page)
    base: dict[str, Any] = {"page": page, "subdomain": host, "root_domain": facts.domain}
    if not facts.registered:
        return {**base, "title": "", "last_crawled": None, "http_code": 0, "page_authority": 0,
                "domain_authority": 0, "spam_score": -1, "link_propensity": 0.0, "pages_to_page": 0,
                "external_pages_to_page": 0, "root_domains_to_page": 0, "root_domains_to_root_domain": 0,
                "external_pages_to_root_domain": 0, "nofollow_pages_to_page": 0, "deleted_pages_to_page": 0}
    if facts.spam:
        domain_authority = site.randint(1, 12)
        spam_score = site.randint(45, 95)
        root_domains = site.randint(0, 40)
    else:
        domain_authority = _clamp(round(1 + 99 * facts.popularity ** 0.8 + site.uniform(-5, 5)))
        spam_score = int(site.random() ** 3 * 16)
        root_domains = int(10 ** (facts.popularity * 6) * site.uniform(0.5, 1.5))
    home = page == host + "/"
    page_authority = _clamp(domain_authority - rng.randint(0, 8 if home else 25))
    root_domains_to_page = int(root_domains * (rng.uniform(0.2, 0.6) if home else rng.uniform(0.0, 0.05)))
    external_pages = root_domains_to_page * rng.randint(1, 25)
    crawled = EPOCH - timedelta(days=rng.randint(1, 120))
    return {
        **base,
        "title": f"{host} | {page.split('/', 1)[1] or 'home'}",
        "last_crawled": crawled.date().isoformat(),
        "http_code": 200,
        "page_authority": page_authority,
        "domain_authority": domain_authority,
        "spam_score": spam_score,
        "link_propensity": round(site.uniform(0.0001, 0.02), 12),
        "pages_to_page": external_pages + rng.randint(0, 500),
        "external_pages_to_page": external_pages,
        "root_domains_to_page": root_domains_to_page,
        "root_domains_to_root_domain": root_domains,
        "external_pages_to_root_domain": root_domains * site.randint(20, 400),
        "nofollow_pages_to_page": int(external_pages * rng.uniform(0.1, 0.7)),
        "deleted_pages_to_page": int(external_pages * rng.uniform(0.0, 0.2)),
    }


def _clamp(value: int) -> int:
    return max(1, min(100, value))


def sample(world: World) -> Sample:
    """A request this API answers from its World (the same-seed test)."""
    return Sample("/v2/url_metrics", "POST", json={"targets": ["https://www.site2.com/a/2", "site5.com"]},
                  headers={"Authorization": "Basic " + base64.b64encode(DEMO_KEY.encode()).decode()})
