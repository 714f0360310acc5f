"""Deterministic facts about synthetic domains, derived from a seed: what several emulated providers share.

A domain's registration, DNS records, popularity, rank and listings are read by the web, the DNS server
and several APIs; facts only one API shows (stories, posts, captures) live in that API's module.

The spam population: ``SPAM_SHARE`` of all domains (and every domain named ``spam*``, ``phish*`` or
``malware*``) are spam domains, whose facts correlate across providers the way real spam does: registered
days to weeks ago, no popularity (so few captures, stories, posts, certificates), no rank, often listed on
the blocklists and threat lists (each list sees only some of them, as real lists do; the named ones are
listed everywhere, as test points), pages full of spammy words and outbound links. Everything is a pure
function of (seed, domain), so the demo and the spam model find the same population every run.
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
SPAM_SHARE = 0.08  # of all synthetic domains
SPAM_PREFIXES = ("spam", "phish", "malware")  # named test points: always spam, listed everywhere
THREATS = ("spam", "phishing", "malware")  # what a spam domain is, as the threat lists would name it
DBL_THREATS = {"127.0.1.2": "spam", "127.0.1.4": "phishing", "127.0.1.5": "malware", "127.0.1.102": "spam"}
# Of the (unnamed) spam domains, the share each blocklist lists: lists overlap but none sees them all.
LISTED_SHARE = {"dbl": 0.7, "surbl": 0.45, "uribl": 0.5}
RANKED_LIMIT = 1_000_000  # ranks beyond this are "not ranked" (the Tranco list's size)


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
    rank: int | None  # global popularity rank (1 = most popular; from popularity), None beyond RANKED_LIMIT
    spam: bool  # one of the world's spam domains (see the module docstring)
    threat: str | None  # for a spam domain, what it is (one of THREATS); None otherwise
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
        named = domain.startswith(SPAM_PREFIXES)
        spam = named or rng.random() < SPAM_SHARE
        # Spam's own draws come from their own stream, so that the facts of clean domains stay as they were.
        spam_rng = self.rng("spam", domain)
        threat = None
        spam_code = None  # the DBL code that says what this spam domain is
        if spam:
            spam_code = {"phish": "127.0.1.4", "malware": "127.0.1.5"}.get(
                next((p for p in SPAM_PREFIXES if domain.startswith(p)), ""))
            spam_code = spam_code or spam_rng.choice(tuple(DBL_THREATS))
            threat = DBL_THREATS[spam_code]
            age_days = spam_rng.randint(1, 90)
            registration = (EPOCH - timedelta(days=age_days)).replace(hour=4, minute=0, second=0)
            expiration = registration + timedelta(days=365)
        dbl_code = None
        surbl_bits = 0
        uribl_bits = 0
        if domain == "dbltest.com":
            dbl_code = "127.0.1.2"
        if domain == "test.surbl.org":
            surbl_bits = 8 | 16 | 64 | 128
        if domain == "test.uribl.com":
            uribl_bits = 2 | 4 | 8
        if spam:
            listed = {zone: named or spam_rng.random() < share for zone, share in LISTED_SHARE.items()}
            if listed["dbl"]:
                dbl_code = dbl_code or spam_code
            if listed["surbl"]:
                surbl_bits = surbl_bits or spam_rng.choice((8, 16, 64, 80, 128))
            if listed["uribl"]:
                uribl_bits = uribl_bits or spam_rng.choice((2, 4, 8, 6))
        refused: set[str] = set()
        if domain.startswith("refused") or rng.random() < 0.02:
            refused.add(rng.choice(("dbl", "surbl", "uribl")))
        a_count, aaaa_count = rng.randint(1, 4), rng.choice((0, 0, 1, 2))
        mx_count, ns_count = rng.choice((0, 1, 2, 2, 3)), rng.randint(2, 4)
        popularity = 0.0 if spam else rng.random() ** 2
        rank = 1 + int((1.0 - popularity) ** 3 * 3 * RANKED_LIMIT)
        return DomainFacts(
            domain=domain,
            registered=not unregistered,
            registration=registration,
            expiration=expiration,
            registrar=registrar,
            registrar_iana_id=iana,
            a_count=a_count,
            aaaa_count=aaaa_count,
            mx_count=mx_count,
            ns_count=ns_count,
            popularity=popularity,
            rank=None if spam or rank > RANKED_LIMIT else rank,
            spam=spam,
            threat=threat,
            dbl_code=dbl_code,
            surbl_bits=surbl_bits,
            uribl_bits=uribl_bits,
            refused_zones=frozenset(refused),
        )


def url_host(url: str) -> str:
    """The host of ``url`` as the facts key it: lower-case, without userinfo or port."""
    rest = url.split("://", 1)[-1]
    return rest.split("/", 1)[0].split("?", 1)[0].rsplit("@", 1)[-1].split(":", 1)[0].lower()

