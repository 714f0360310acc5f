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
    web, ``dns`` for plain DNS records and ``dnsbl`` for the blocklist zones."""

    latency_ms: float = 0.0
    error_rate: float = 0.0
    rate_limits: dict[str, float] = field(default_factory=dict)
    hang: frozenset[str] = frozenset()
    seed: int = 0

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
