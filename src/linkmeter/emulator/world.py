"""Deterministic facts about synthetic domains, derived from a seed: what several emulated providers share.

A domain's registration, DNS records, popularity and blocklist listings are read by the web, the DNS server
and several APIs; facts only one API shows (stories, posts, captures) live in that API's module.
"""

from __future__ import annotations

import functools
import hashlib
import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from linkmeter.engine.urls import registered_domain

# The emulator's "today": fixed so that facts such as domain age are stable across runs.
EPOCH = datetime(2026, 1, 1, tzinfo=UTC)

REGISTRARS = (
    ("MarkMonitor Inc.", "292"),
    ("GoDaddy.com, LLC", "146"),
    ("Namecheap, Inc.", "1068"),
    ("Gandi SAS", "81"),
    ("Tucows Domains Inc.", "69"),
    ("Cloudflare, Inc.", "1910"),
)


@dataclass(frozen=True, slots=True)
class DomainFacts:
    domain: str
    registered: bool
    registration: datetime
    expiration: datetime
    registrar: str
    registrar_iana_id: str
    a_count: int
    aaaa_count: int
    mx_count: int
    ns_count: int
    popularity: float  # 0..1, scales engagement of the domain's URLs
    dbl_code: str | None  # e.g. "127.0.1.2" when listed on Spamhaus DBL
    surbl_bits: int  # SURBL bitmask (0 = clean)
    uribl_bits: int  # URIBL bitmask (0 = clean)
    refused_zones: frozenset[str]  # zones that answer this domain with a refusal code


class World:
    """All facts are pure functions of (seed, name): the same seed gives the same answers."""

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed

    def rng(self, *parts: object) -> random.Random:
        digest = hashlib.sha256(repr((self.seed, *parts)).encode()).digest()
        return random.Random(int.from_bytes(digest[:8], "big"))

    @functools.lru_cache(maxsize=65536)  # noqa: B019 - the world lives as long as the emulator
    def domain(self, name: str) -> DomainFacts:
        domain = registered_domain(name)
        rng = self.rng("domain", domain)
        unregistered = domain.startswith(("unregistered", "nxdomain")) or rng.random() < 0.02
        age_days = int(rng.lognormvariate(7.5, 1.1)) % 11000 + 1
        registration = (EPOCH - timedelta(days=age_days)).replace(hour=4, minute=0, second=0)
        expiration = registration + timedelta(days=365 * (rng.randint(1, 10) + age_days // 365))
        registrar, iana = rng.choice(REGISTRARS)
        spammy = domain.startswith(("spam", "phish", "malware")) or rng.random() < 0.08
        dbl_code = None
        surbl_bits = 0
        uribl_bits = 0
        if domain == "dbltest.com":
            dbl_code = "127.0.1.2"
        if domain == "test.surbl.org":
            surbl_bits = 8 | 16 | 64 | 128
        if domain == "test.uribl.com":
            uribl_bits = 2 | 4 | 8
        if spammy:
            dbl_code = dbl_code or rng.choice(("127.0.1.2", "127.0.1.4", "127.0.1.5", "127.0.1.102"))
            surbl_bits = surbl_bits or rng.choice((8, 16, 64, 80, 128))
            uribl_bits = uribl_bits or rng.choice((2, 4, 8, 6))
        refused: set[str] = set()
        if domain.startswith("refused") or rng.random() < 0.02:
            refused.add(rng.choice(("dbl", "surbl", "uribl")))
        return DomainFacts(
            domain=domain,
            registered=not unregistered,
            registration=registration,
            expiration=expiration,
            registrar=registrar,
            registrar_iana_id=iana,
            a_count=rng.randint(1, 4),
            aaaa_count=rng.choice((0, 0, 1, 2)),
            mx_count=rng.choice((0, 1, 2, 2, 3)),
            ns_count=rng.randint(2, 4),
            popularity=0.0 if spammy else rng.random() ** 2,
            dbl_code=dbl_code,
            surbl_bits=surbl_bits,
            uribl_bits=uribl_bits,
            refused_zones=frozenset(refused),
        )


def url_host(url: str) -> str:
    """The host of ``url`` as the facts key it: lower-case, without userinfo or port."""
    rest = url.split("://", 1)[-1]
    return rest.split("/", 1)[0].split("?", 1)[0].rsplit("@", 1)[-1].split(":", 1)[0].lower()

