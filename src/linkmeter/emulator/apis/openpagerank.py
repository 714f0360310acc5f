"""Emulated Open PageRank: ``getPageRank`` for up to 100 domains, per-item 404s, the bad-key body."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from linkmeter.emulator import answers
from linkmeter.emulator.apis import WORLD, Sample
from linkmeter.emulator.world import RANKED_LIMIT, World

NAME = "openpagerank"
DEMO_KEY = "linkmeter0demo0key0for0open0pagerank000"  # real keys: 40 characters of [gcswkso048]
MAX_DOMAINS = 100
LAST_UPDATED = "15th Dec 2025"  # the index date, a little before the World's EPOCH
DOMAIN = re.compile(r"^(?=.{1,253}$)([a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z0-9-]{2,63}$")
DOMAIN_PARAM = re.compile(r"^domains\[\d*\]$")  # domains[]= and the domains[0]= some clients send
SPAM_UNKNOWN = 0.4  # of spam domains, the share too new for OPR's index
UNKNOWN_BELOW = 0.005  # clean domains less popular than this are not in the index

routes = web.RouteTableDef()


@dataclass(frozen=True, slots=True)
class PageRank:
    rank: int
    page_rank: float  # 0-10, two decimals


@routes.get("/api/v1.0/getPageRank")
async def get_page_rank(request: web.Request) -> web.Response:
    if request.headers.get("API-OPR", "") != DEMO_KEY:
        return bad_key()
    domains = [value for key, value in request.query.items() if DOMAIN_PARAM.match(key)]
    if not domains:
        return web.json_response({"status_code": 400, "error": "No domains given: use domains[]=example.com"},
                                 status=400)
    if len(domains) > MAX_DOMAINS:
        return web.json_response({"status_code": 400, "error": f"At most {MAX_DOMAINS} domains per request"},
                                 status=400)
    world = request.app[WORLD]
    return web.json_response({"status_code": 200, "response": [item(world, domain) for domain in domains],
                              "last_updated": LAST_UPDATED})


def bad_key() -> web.Response:
    """OPR's answer to a missing or unknown key (REFERENCE §8a; HTTP 403 as one public report shows it)."""
    return web.json_response({"status": False, "error": "Invalid API key "}, status=403)


def rate_limited_response(retry_after: float) -> web.Response:
    return web.json_response({"status_code": 429, "error": "Too many requests"}, status=429,
                             headers={"Retry-After": str(max(1, math.ceil(retry_after)))})


def error_response(status: int) -> web.Response:
    return web.json_response({"status_code": status, "error": answers.reason(status)}, status=status)


def page_rank(world: World, domain: str) -> PageRank | None:
    """What OPR knows of ``domain`` (its registered domain's facts); None: not in its index. Ranks follow the
    World's rank where there is one (OPR counts more domains, so they differ by a factor), the score falls
    with the log of the rank; spam domains are new, so unknown or at the bottom."""
    name = domain.strip().rstrip(".").lower()
    if not DOMAIN.match(name):
        return None
    facts = world.domain(name)
    rng = world.rng(NAME, facts.domain)
    if not facts.registered:
        return None
    if facts.spam:
        if rng.random() < SPAM_UNKNOWN:
            return None
        rank = rng.randint(8_000_000, 60_000_000)
    elif facts.rank is not None:
        rank = max(1, int(facts.rank * rng.uniform(0.7, 1.6)))
    elif facts.popularity < UNKNOWN_BELOW:
        return None
    else:
        rank = int(RANKED_LIMIT * (1 + 9 * (1 - facts.popularity)) * rng.uniform(0.9, 1.1))
    score = max(0.0, min(10.0, 10 * (1 - math.log10(rank) / 8)))
    return PageRank(rank=rank, page_rank=round(score, 2))


def item(world: World, domain: str) -> dict[str, Any]:
    """One ``response`` item, echoing the domain as sent; ``rank`` is a string, as OPR sends it."""
    found = page_rank(world, domain)
    if found is None:
        return {"status_code": 404, "error": "Domain not found", "page_rank_integer": 0, "page_rank_decimal": 0,
                "rank": None, "domain": domain}
    return {"status_code": 200, "error": "", "page_rank_integer": round(found.page_rank),
            "page_rank_decimal": found.page_rank, "rank": str(found.rank), "domain": domain}


def sample(world: World) -> Sample:
    """A request this API answers from its World (the same-seed test)."""
    return Sample("/api/v1.0/getPageRank?domains[]=site1.com&domains[]=spam-deals.example",
                  headers={"API-OPR": DEMO_KEY})
