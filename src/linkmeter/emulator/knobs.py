"""The emulator's fault and latency knobs, shared by its HTTP server and its DNS server."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field

# The spread of the latency distribution: log-normal with this sigma around the median. 0.35 puts p99
# at about 2.3x the median, which is what typical third-party API latency histograms look like.
LATENCY_SIGMA = 0.35


@dataclass(slots=True)
class Knobs:
    """``rate_limits`` maps a provider name to requests per second; ``hang`` names providers that never
    answer. Provider names: the API mounts (``hackernews``, ``reddit``, ...), ``page`` for the synthetic
    web, ``dns`` for plain DNS records and ``dnsbl`` for the blocklist zones. ``seed`` seeds the world
    (content) and the fault draws.

    Two knobs are for measuring rather than for the demo's realism (``linkmeter bench`` sets both):
    ``slow_scale`` multiplies the slowness some APIs show on top of ``latency_ms`` (PageSpeed's seconds-long
    analysis, crt.sh's big domains giving up after seconds, Mastodon's ``slow*`` instances); 0 leaves only
    ``latency_ms``. ``published_limits`` False stops the APIs enforcing their own published per-client limits
    (Facebook's 10 requests per URL per hour, PhishTank's requests per window): the knobs' ``rate_limits``
    still apply."""

    latency_ms: float = 0.0
    error_rate: float = 0.0
    rate_limits: dict[str, float] = field(default_factory=dict)
    hang: frozenset[str] = frozenset()
    seed: int = 0
    slow_scale: float = 1.0
    published_limits: bool = True

    def delay_seconds(self, rng: random.Random) -> float:
        if self.latency_ms <= 0:
            return 0.0
        return self.latency_ms / 1000.0 * math.exp(rng.gauss(0.0, LATENCY_SIGMA))

    def fails(self, rng: random.Random) -> bool:
        return self.error_rate > 0 and rng.random() < self.error_rate


def parse_rate_limit(text: str) -> tuple[str, float]:
    """Parse ``PROVIDER=N/s`` (also ``N/m``, ``N/h`` or a bare number of requests per second)."""
    name, sep, value = text.partition("=")
    if not sep or not name.strip():
        raise ValueError(f"expected PROVIDER=N/s, got {text!r}")
    number, _, unit = value.strip().partition("/")
    per = {"": 1.0, "s": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0}.get(unit.strip().lower())
    if per is None:
        raise ValueError(f"unknown rate unit in {text!r} (use /s, /m or /h)")
    rate = float(number) / per
    if rate <= 0:
        raise ValueError(f"rate must be positive in {text!r}")
    return name.strip().lower(), rate


@dataclass(frozen=True, slots=True)
class Verdict:
    """What the knobs decide for one request. ``retry_after`` (whole seconds) is set when rate limited;
    ``error_status`` (500 or 503) when the request is to fail; ``delay`` applies to every answer."""

    hang: bool = False
    retry_after: float | None = None
    delay: float = 0.0
    error_status: int | None = None


class TokenBucket:
    """``rate`` tokens per second, at most ``burst`` (default: one second's worth, at least 1) saved up."""

    def __init__(self, rate: float, burst: float | None = None) -> None:
        self.rate = rate
        self.capacity = burst if burst is not None else max(1.0, rate)
        self._tokens = self.capacity
        self._stamp: float | None = None

    def take(self, now: float) -> float:
        """Take a token at time ``now`` (seconds, monotonic): 0.0 if granted, else seconds until one is."""
        if self._stamp is not None:
            self._tokens = min(self.capacity, self._tokens + (now - self._stamp) * self.rate)
        self._stamp = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return 0.0
        return (1.0 - self._tokens) / self.rate


class Faults:
    """Applies Knobs per provider. Draws come from one RNG per provider seeded with (seed, provider) and
    are taken in request-arrival order, the same draws whatever the outcome: the n-th request to a
    provider always gets the same latency and error draws for a given seed. Rate limiting depends on
    arrival times, so it is the one knob that is not a pure function of the seed."""

    def __init__(self, knobs: Knobs) -> None:
        self.knobs = knobs
        self._rngs: dict[str, random.Random] = {}
        self._buckets = {name: TokenBucket(rate) for name, rate in knobs.rate_limits.items()}

    def decide(self, provider: str, now: float) -> Verdict:
        if provider in self.knobs.hang:
            return Verdict(hang=True)
        rng = self._rngs.get(provider)
        if rng is None:
            rng = self._rngs[provider] = random.Random(f"{self.knobs.seed}:faults:{provider}")
        delay = self.knobs.delay_seconds(rng) if self.knobs.latency_ms > 0 else 0.0
        fails = rng.random() < self.knobs.error_rate
        status = 503 if rng.random() < 0.7 else 500
        bucket = self._buckets.get(provider)
        wait = bucket.take(now) if bucket is not None else 0.0
        if wait > 0:
            return Verdict(retry_after=float(max(1, math.ceil(wait))), delay=delay)
        return Verdict(delay=delay, error_status=status if fails else None)
