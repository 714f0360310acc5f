"""Emulated URLhaus API (abuse.ch): URL and host lookups, string-typed numbers, every ``query_status``."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

from aiohttp import web

from linkmeter.emulator import answers
from linkmeter.emulator.apis import WORLD, Sample
from linkmeter.emulator.apis._threats import CLEAN, held
from linkmeter.emulator.world import EPOCH, DomainFacts, World, url_host

NAME = "urlhaus"
DEMO_KEY = "0123456789abcdef0123456789abcdef0123456789abcdef"
# URLhaus tracks malware distribution: most malware domains, a few others, hardly any clean site.
SHARES = {"malware": 0.85, "phishing": 0.03, "spam": 0.03, CLEAN: 0.002}
MAX_HOST_URLS = 100  # URLs a host answer lists (url_count counts them all)
REFERENCE = "https://urlhaus.abuse.ch"
FAMILIES = (("emotet", "heodo"), ("Mozi", "elf", "mips"), ("Qakbot",), ("AgentTesla", "exe"),
            ("mirai", "elf"), ("RedLineStealer", "exe"), ("AsyncRAT",), ("zip",), ("SmokeLoader", "exe"))
PAYLOAD_TYPES = ("exe", "doc", "zip", "elf", "dll", "js")
REPORTERS = ("abuse_ch", "Cryptolaemus1", "zbetcheckin", "lrz_urlhaus", "JAMESWT_MHT", "anonymous")
DBL_WORDS = {"127.0.1.2": "spammer_domain", "127.0.1.4": "phishing_domain", "127.0.1.5": "malware_domain",
             "127.0.1.102": "abused_legit_spam"}
HOST_NAME = re.compile(r"^(?=.{1,253}$)([a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9-]{1,63}$|^[0-9.]+$")

routes = web.RouteTableDef()


@routes.route("*", "/v1/url/")
async def url_lookup(request: web.Request) -> web.Response:
    refused = await _refused(request)
    if refused is not None:
        return refused
    url = str((await request.post()).get("url", "")).strip()
    host = url_host(url) if "://" in url else ""
    if not url.lower().startswith(("http://", "https://")) or not HOST_NAME.match(host):
        return _status("invalid_url")
    answer = url_entry(request.app[WORLD], url)
    return web.json_response(answer if answer is not None else {"query_status": "no_results"})


@routes.route("*", "/v1/host/")
async def host_lookup(request: web.Request) -> web.Response:
    refused = await _refused(request)
    if refused is not None:
        return refused
    host = str((await request.post()).get("host", "")).strip().lower().rstrip(".")
    if not HOST_NAME.match(host):
        return _status("invalid_host")
    answer = host_entry(request.app[WORLD], host)
    return web.json_response(answer if answer is not None else {"query_status": "no_results"})


def error_response(status: int) -> web.Response:
    return answers.html_error(status)


def rate_limited_response(retry_after: float) -> web.Response:
    return answers.html_rate_limited(retry_after)


def listed_domain(world: World, host: str) -> DomainFacts | None:
    return held(world, NAME, host, SHARES) if host else None


def url_entry(world: World, url: str) -> dict[str, Any] | None:
    """The URL answer (``query_status: ok``) when the URL's domain is on URLhaus, else None."""
    facts = listed_domain(world, url_host(url))
    if facts is None:
        return None
    entry = _url_fields(world, facts, url)
    rng = world.rng(NAME, "payload", url)
    kind = rng.choice(PAYLOAD_TYPES)
    first_seen = entry["date_added"][:10] + " 00:00:00 UTC"
    return {
        "query_status": "ok",
        **entry,
        "host": url_host(url),
        "last_online": None if entry["url_status"] == "online" else first_seen,
        "blacklists": _blacklists(facts),
        "payloads": [{
            "firstseen": first_seen, "filename": f"invoice_{rng.randint(1000, 9999)}.{kind}", "file_type": kind,
            "response_size": str(rng.randint(20_000, 900_000)), "response_md5": f"{rng.getrandbits(128):032x}",
            "response_sha256": f"{rng.getrandbits(256):064x}", "signature": entry["tags"][0],
            "virustotal": _virustotal(rng),
        }],
    }


def host_entry(world: World, host: str) -> dict[str, Any] | None:
    """The host answer when the host's domain is on URLhaus, else None."""
    facts = listed_domain(world, host)
    if facts is None:
        return None
    rng = world.rng(NAME, "host", host)
    count = 1 + min(int(rng.paretovariate(1.3)), 400)
    urls = [_url_fields(world, facts, f"http://{host}/{_path(world, host, i)}")
            for i in range(min(count, MAX_HOST_URLS))]
    return {
        "query_status": "ok",
        "urlhaus_reference": f"{REFERENCE}/host/{host}/",
        "host": host,
        "firstseen": min(entry["date_added"] for entry in urls),
        "url_count": str(count),
        "blacklists": _blacklists(facts),
        "urls": urls,
    }


def _url_fields(world: World, facts: DomainFacts, url: str) -> dict[str, Any]:
    """What the URL answer and the host answer's ``urls`` items share."""
    rng = world.rng(NAME, "url", url)
    family = world.rng(NAME, "family", facts.domain).choice(FAMILIES)
    span = max(1, (EPOCH - facts.registration).days)
    added = facts.registration + timedelta(days=rng.randrange(span), seconds=rng.randrange(86400))
    status = rng.choices(("online", "offline", "unknown"), (0.3, 0.6, 0.1))[0]
    url_id = str(rng.randint(100_000, 3_500_000))
    return {
        "id": url_id,
        "urlhaus_reference": f"{REFERENCE}/url/{url_id}/",
        "url": url,
        "url_status": status,
        "date_added": added.strftime("%Y-%m-%d %H:%M:%S UTC"),
        "threat": "malware_download",
        "reporter": rng.choice(REPORTERS),
        "larted": "true" if rng.random() < 0.7 else "false",
        "takedown_time_seconds": None if status == "online" else str(rng.randint(600, 900_000)),
        "tags": list(family),
    }


def _path(world: World, host: str, index: int) -> str:
    rng = world.rng(NAME, "path", host, index)
    return f"{rng.choice(('bins', 'wp-content/uploads', 'files', 'x'))}/{rng.getrandbits(32):08x}." \
           f"{rng.choice(PAYLOAD_TYPES)}"


def _blacklists(facts: DomainFacts) -> dict[str, str]:
    return {"spamhaus_dbl": DBL_WORDS.get(facts.dbl_code or "", "not listed"),
            "surbl": "listed" if facts.surbl_bits else "not listed"}


def _virustotal(rng: Any) -> dict[str, str] | None:
    if rng.random() < 0.2:
        return None
    engines = rng.randint(55, 72)
    hits = rng.randint(1, engines)
    return {"result": f"{hits} / {engines}", "percent": f"{100 * hits / engines:.2f}",
            "link": f"https://www.virustotal.com/gui/file/{rng.getrandbits(256):064x}/detection"}


async def _refused(request: web.Request) -> web.Response | None:
    """401 without a good Auth-Key; ``http_post_expected`` for anything but a POST."""
    if request.headers.get("Auth-Key", "") != DEMO_KEY:
        return web.json_response({"query_status": "unknown_auth_key"}, status=401)
    if request.method != "POST":
        return _status("http_post_expected")
    return None


def _status(query_status: str) -> web.Response:
    return web.json_response({"query_status": query_status})


def sample(world: World) -> Sample:
    """A request this API answers from its World (the same-seed test)."""
    return Sample("/v1/host/", "POST", headers={"Auth-Key": DEMO_KEY}, data={"host": "malware-drop.example"})
