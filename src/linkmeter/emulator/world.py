"""Deterministic facts about synthetic domains and URLs, derived from a seed, shared by every emulated API."""

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
SUBREDDITS = ("technology", "programming", "news", "worldnews", "science", "webdev", "python", "europe")


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


@dataclass(frozen=True, slots=True)
class Story:
    object_id: str
    url: str
    title: str
    author: str
    points: int | None
    num_comments: int | None
    created_at_i: int


@dataclass(frozen=True, slots=True)
class RedditPost:
    id: str
    url: str
    subreddit: str
    title: str
    author: str
    score: int
    num_comments: int
    created_utc: float


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

    def wayback_captures(self, url: str) -> list[datetime]:
        """Capture times of ``url`` (normalised), oldest first; empty when never archived."""
        facts = self.domain(_host(url))
        rng = self.rng("wayback", url)
        if rng.random() > 0.35 + 0.6 * facts.popularity:
            return []
        count = 1 + int(rng.paretovariate(1.2) * (1 + 20 * facts.popularity))
        count = min(count, 400)
        newest = EPOCH - timedelta(days=rng.randint(0, 30))
        span_days = max(1, (newest - facts.registration).days)
        captures = sorted(
            newest - timedelta(seconds=rng.randint(0, span_days * 86400)) for _ in range(count)
        )
        return captures

    def hn_stories(self, url: str) -> list[Story]:
        """Stories submitted with exactly this URL (normalised)."""
        facts = self.domain(_host(url))
        rng = self.rng("hn", url)
        if rng.random() > 0.15 + 0.5 * facts.popularity:
            return []
        stories = []
        for i in range(1 + int(rng.random() ** 3 * 3)):
            points: int | None = int(rng.paretovariate(1.1) * 5 * (1 + 10 * facts.popularity))
            comments: int | None = int((points or 0) * rng.uniform(0.1, 0.9))
            if rng.random() < 0.05:
                points, comments = None, None
            created = EPOCH - timedelta(days=rng.randint(1, 3000), seconds=rng.randint(0, 86399))
            stories.append(
                Story(
                    object_id=str(rng.randint(1_000_000, 44_000_000)),
                    url=url,
                    title=f"Story {i + 1} about {_host(url)}",
                    author=f"user{rng.randint(1, 99999)}",
                    points=points,
                    num_comments=comments,
                    created_at_i=int(created.timestamp()),
                )
            )
        return stories

    def reddit_posts(self, url: str) -> list[RedditPost]:
        """Posts whose submitted URL is exactly ``url`` as given (Reddit does not normalise)."""
        facts = self.domain(_host(url))
        rng = self.rng("reddit", url)
        if rng.random() > 0.1 + 0.5 * facts.popularity:
            return []
        posts = []
        for _ in range(1 + int(rng.random() ** 2 * 4)):
            score = int(rng.paretovariate(1.2) * 3 * (1 + 20 * facts.popularity))
            created = EPOCH - timedelta(days=rng.randint(1, 3000), seconds=rng.randint(0, 86399))
            posts.append(
                RedditPost(
                    id=_base36(rng.randint(36**5, 36**6)),
                    url=url,
                    subreddit=rng.choice(SUBREDDITS),
                    title=f"Discussion: {_host(url)}",
                    author=f"redditor{rng.randint(1, 99999)}",
                    score=score,
                    num_comments=int(score * rng.uniform(0.05, 0.6)),
                    created_utc=float(int(created.timestamp())),
                )
            )
        return posts


def _host(url: str) -> str:
    rest = url.split("://", 1)[-1]
    return rest.split("/", 1)[0].split("?", 1)[0].rsplit("@", 1)[-1].split(":", 1)[0].lower()


def _base36(number: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while number:
        number, rem = divmod(number, 36)
        out = digits[rem] + out
    return out or "0"
