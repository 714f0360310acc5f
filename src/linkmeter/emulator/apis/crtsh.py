"""Emulated crt.sh: identity search as JSON rows (precertificate and final certificate as two rows), and the
slow "database gave up" 503 page for big domains."""

from __future__ import annotations

import asyncio
import html
import json
import math
import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from aiohttp import web

from linkmeter.emulator import answers
from linkmeter.emulator.apis import KNOBS, WORLD, Sample
from linkmeter.emulator.world import EPOCH, World
from linkmeter.engine.urls import registered_domain

NAME = "crtsh"
BIG_PREFIX = "big"  # registered domains starting so (bigcorp.example) have too many certificates to list
# How long a big domain's search runs before crt.sh's database cancels it (nl-kat #3911 saw ~6 s). Tests
# shorten it; a client whose timeout is shorter sees a timeout instead of the 503 page.
BIG_DOMAIN_SECONDS = 6.0
CT_ERA = datetime(2013, 3, 26, tzinfo=UTC)  # crt.sh's first logs
FINAL_LOGGED = 0.6  # share of issuances whose final certificate was logged too (a second row)
SUBDOMAINS = ("mail", "api", "blog", "shop", "cdn", "app", "dev", "staging", "m", "status", "docs", "login",
              "static", "admin", "vpn", "support")


@dataclass(frozen=True, slots=True)
class Issuer:
    ca_id: int
    name: str
    days: int  # validity of its certificates
    since: datetime
    until: datetime
    serial_hex: int  # serial number length in hex digits


def _d(year: int, month: int = 1) -> datetime:
    return datetime(year, month, 1, tzinfo=UTC)


# Real issuer names; crt.sh CA ids are real for X3 (REFERENCE §9), made up for the others.
LETS_ENCRYPT = (
    Issuer(16418, "C=US, O=Let's Encrypt, CN=Let's Encrypt Authority X3", 90, _d(2016, 3), _d(2021, 1), 36),
    Issuer(183267, "C=US, O=Let's Encrypt, CN=R3", 90, _d(2020, 12), _d(2024, 6), 36),
    Issuer(295815, "C=US, O=Let's Encrypt, CN=R10", 90, _d(2024, 3), _d(2030), 36),
    Issuer(295814, "C=US, O=Let's Encrypt, CN=R11", 90, _d(2024, 3), _d(2030), 36),
    Issuer(295819, "C=US, O=Let's Encrypt, CN=E5", 90, _d(2024, 3), _d(2030), 36),
)
COMMERCIAL = (
    Issuer(1397, "C=GB, ST=Greater Manchester, L=Salford, O=Sectigo Limited, CN=Sectigo RSA Domain Validation "
                 "Secure Server CA", 365, _d(2013), _d(2030), 32),
    Issuer(157938, "C=US, O=DigiCert Inc, OU=www.digicert.com, CN=DigiCert TLS RSA SHA256 2020 CA1", 365,
           _d(2013), _d(2030), 32),
    Issuer(183283, "C=US, O=Amazon, OU=Server CA 1B, CN=Amazon", 395, _d(2016), _d(2023, 6), 32),
    Issuer(253996, "C=US, O=Amazon, CN=Amazon RSA 2048 M02", 395, _d(2022, 8), _d(2030), 32),
    Issuer(264384, "C=US, O=Google Trust Services, CN=WR1", 90, _d(2023, 12), _d(2030), 32),
)

routes = web.RouteTableDef()


@dataclass(frozen=True, slots=True)
class Cert:
    precert_id: int
    final_id: int | None  # the final certificate's row, when it was logged too
    issuer: Issuer
    names: tuple[str, ...]  # the common name first
    not_before: datetime
    serial: str

    @property
    def not_after(self) -> datetime:
        return self.not_before + timedelta(days=self.issuer.days) - timedelta(seconds=1)


@routes.get("/")
async def search(request: web.Request) -> web.StreamResponse:
    world = request.app[WORLD]
    query = {name.lower(): value for name, value in request.query.items()}  # crt.sh ignores the case of names
    term = search_term(query.get("q", query.get("identity", "")).strip())
    if term is None:
        return _html_page("Unsupported use of '%'")
    if term and registered_domain(term).startswith(BIG_PREFIX):
        seconds = BIG_DOMAIN_SECONDS * request.app[KNOBS].slow_scale
        await asyncio.sleep(seconds)
        return gave_up(seconds)
    rows = search_rows(world, term, exclude_expired=query.get("exclude", "") == "expired",
                       deduplicate=query.get("deduplicate", "").upper() == "Y")
    if query.get("output", "") != "json":
        return _html_page(f"{len(rows)} certificates for {html.escape(term)}")
    return web.Response(text=json.dumps(rows, separators=(",", ":")), content_type="application/json",
                        headers={"Access-Control-Allow-Origin": "*"})


def error_response(status: int) -> web.Response:
    """503: mod_certwatch's page for a query that failed for a passing reason (a replica's conflict); 500: the
    front end's page."""
    if status == 503:
        return gave_up(0, message="ERROR:  canceling statement due to conflict with recovery\nDETAIL:  User "
                                  "query might have needed to see row versions that must be removed.")
    return answers.html_error(status)


def rate_limited_response(retry_after: float) -> web.Response:
    """crt.sh's 429 is UNVERIFIED: the front end's HTML page with Retry-After."""
    return answers.html_rate_limited(max(1, math.ceil(retry_after)))


def gave_up(seconds: float, *, message: str = "ERROR:  canceling statement due to statement timeout") -> web.Response:
    """The page mod_certwatch answers when the database stopped the query (HTTP 503)."""
    whole = int(seconds)
    text = (
        '<!DOCTYPE HTML PUBLIC "-//W3C//DTD HTML 4.0 Transitional//EN"><HTML><HEAD><TITLE>crt.sh | ERROR!</TITLE>'
        '<STYLE type="text/css">body{color:#888888;font:12pt Roboto,sans-serif;padding-top:10px;text-align:center}'
        '</STYLE></HEAD><BODY><A style="text-decoration:none" href="/"><SPAN class="title">crt.sh</SPAN></A>'
        '&nbsp; <SPAN class="whiteongrey">Certificate Search</SPAN><BR><BR><BR><BR>Sorry, something went wrong...'
        f' :-(<BR><BR>Your request was terminated by the crt.sh database server after <B>{whole}</B> second'
        f'{"" if whole == 1 else "s"} with the following messages:<BR><BR><TEXTAREA readonly rows="8" '
        f'cols="100">{html.escape(message)}</TEXTAREA><BR><BR>Unfortunately, searches that would produce many '
        'results may never succeed. For other requests, please try again later.<BR><BR><BR>'
        f'<P class="copyright">&copy; Sectigo Limited 2015-{EPOCH.year}. All rights reserved.</P></BODY></HTML>'
    )
    return web.Response(status=503, text=text, content_type="text/html", charset="utf-8")


def search_term(value: str) -> str | None:
    """What crt.sh searches for: a leading ``%.`` (or ``%...%``) is dropped; another ``%`` is refused."""
    term = value.lower().rstrip(".")
    if term.startswith("%.") and len(term) > 2:
        term = term[2:]
    elif len(term) > 2 and term.startswith("%") and term.endswith("%"):
        term = term[1:-1]
    return None if "%" in term else term


def matches(name: str, term: str) -> bool:
    """Full-text identity match: a name stands for itself and every parent domain (``*.x`` for ``x``)."""
    bare = name[2:] if name.startswith("*.") else name
    return name == term or bare == term or bare.endswith("." + term)


def certificates(world: World, domain: str) -> list[Cert]:
    """Every certificate of ``domain`` (a registered domain) and its subdomains, newest first."""
    facts = world.domain(domain)
    rng = world.rng("crtsh", domain)
    if not facts.registered or domain.startswith(BIG_PREFIX):
        return []
    found: list[Cert] = []
    if facts.spam:
        # Spam: a couple of free certificates at most, issued after the (recent) registration.
        for _ in range(rng.choice((0, 1, 1, 2))):
            when = facts.registration + (EPOCH - facts.registration) * rng.random()
            found.append(_cert(world, domain, (domain, "www." + domain), when, _issuer(LETS_ENCRYPT, when, rng)))
        return sorted(found, key=lambda c: c.not_before, reverse=True)
    if rng.random() < 0.04:
        return []  # never had HTTPS
    pop = facts.popularity
    # Popular domains took up HTTPS earlier; nobody before the domain existed or before CT logs.
    adopted = CT_ERA + timedelta(days=int((1.0 - pop) * rng.random() * 9 * 365))
    start = max(facts.registration + timedelta(days=rng.randint(1, 90)), adopted) + timedelta(
        seconds=rng.randint(0, 86399))
    lines: list[tuple[tuple[str, ...], datetime]] = [
        ((("*." + domain, domain) if rng.random() < 0.3 else (domain, "www." + domain)), start)]
    for sub in rng.sample(SUBDOMAINS, int(pop * pop * 10 * rng.random())):
        lines.append(((f"{sub}.{domain}",), start + (EPOCH - start) * rng.random()))
    commercial = rng.random() < 0.15 + 0.5 * pop
    for names, begin in lines:
        pool = COMMERCIAL if commercial and rng.random() < 0.7 else LETS_ENCRYPT
        when = begin
        while when < EPOCH:
            issuer = _issuer(pool, when, rng)
            found.append(_cert(world, domain, names, when, issuer))
            # Renewed a month before expiry, give or take a few days.
            when += timedelta(days=max(20, issuer.days - 30 + rng.randint(-5, 5)), seconds=rng.randint(0, 86399))
    return sorted(found, key=lambda c: c.not_before, reverse=True)


def search_rows(world: World, term: str, *, exclude_expired: bool = False,
                deduplicate: bool = False) -> list[dict[str, object]]:
    """The JSON rows crt.sh answers for ``term``: one per logged entry, names limited to those that match."""
    if not term or "." not in term:
        return []
    rows: list[dict[str, object]] = []
    for cert in certificates(world, registered_domain(term)):
        names = sorted({name for name in cert.names if matches(name, term)})
        if not names or (exclude_expired and cert.not_after < EPOCH):
            continue
        ids = [cert.precert_id] if deduplicate or cert.final_id is None else [cert.precert_id, cert.final_id]
        for number, crt_id in enumerate(ids):
            logged = cert.not_before + timedelta(hours=1, seconds=number * 397, milliseconds=crt_id % 1000)
            rows.append({
                "issuer_ca_id": cert.issuer.ca_id,
                "issuer_name": cert.issuer.name,
                "common_name": cert.names[0],
                "name_value": "\n".join(names),
                "id": crt_id,
                "entry_timestamp": logged.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3],
                "not_before": cert.not_before.strftime("%Y-%m-%dT%H:%M:%S"),
                "not_after": cert.not_after.strftime("%Y-%m-%dT%H:%M:%S"),
                "serial_number": cert.serial,
                "result_count": len(names) + (1 if matches(cert.names[0], term) else 0),
            })
    return rows


def _issuer(pool: tuple[Issuer, ...], when: datetime, rng: random.Random) -> Issuer:
    current = [issuer for issuer in pool if issuer.since <= when < issuer.until] or [pool[0]]
    return rng.choice(current)


def _cert(world: World, domain: str, names: tuple[str, ...], when: datetime, issuer: Issuer) -> Cert:
    rng = world.rng("crtsh-cert", domain, names, when.isoformat())
    not_before = when.replace(microsecond=0)
    # crt.sh ids grow with time: about 10 a second since 2013, drawn within the day.
    base = 10_000_000 + int((not_before - CT_ERA).total_seconds()) * 10
    precert = base + rng.randint(0, 9)
    digits = issuer.serial_hex
    # Let's Encrypt serials start 03 or 04; others are random 128-bit numbers.
    serial = (rng.choice(("03", "04")) + format(rng.getrandbits((digits - 2) * 4), f"0{digits - 2}x")
              if issuer in LETS_ENCRYPT else format(rng.getrandbits(digits * 4), f"0{digits}x"))
    final = precert + rng.randint(1_000, 900_000) if rng.random() < FINAL_LOGGED else None
    return Cert(precert_id=precert, final_id=final, issuer=issuer, names=names, not_before=not_before,
                serial=serial)


def _html_page(message: str) -> web.Response:
    return web.Response(text=f"<HTML><HEAD><TITLE>crt.sh | Certificate Search</TITLE></HEAD><BODY>{message}"
                             "</BODY></HTML>", content_type="text/html", charset="utf-8")


def sample(world: World) -> Sample:
    """A request this API answers from its World (the same-seed test)."""
    return Sample("/?q=site2.com&output=json")
