"""What the emulator saw, per provider: requests, 429s sent, requests that came before a Retry-After had
passed, and the busiest second. Served as ``GET /_emulator/stats`` so a test can check how clients behave.

A request is **early** when it arrives while a ``Retry-After`` the emulator announced for that provider is
still running: after ``sent + grace`` and before ``sent + retry_after``, where ``sent`` is when the 429 left
the emulator. The grace is for requests already on their way: a client cannot honour a 429 it has not yet
received, and with many workers it takes a moment for the one that got it to tell the others (default
``EARLY_GRACE`` = 0.1 s; a snapshot can be asked for with another grace, as every arrival during a
Retry-After is kept with how long after the 429 it came). The announcement applies to the provider as a
whole, not to the connection or the client that got it: a rate limit is per API key or per address, and
every worker behind it is meant to wait.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from linkmeter.emulator.knobs import TokenBucket

EARLY_GRACE = 0.1  # seconds after a 429 is sent during which arrivals still count as "in flight"
RATE_WINDOW = 1.0  # max_rate_per_s: the most arrivals within any window this long


@dataclass(slots=True)
class _Provider:
    requests: int = 0
    rate_limited: int = 0
    max_rate_per_s: int = 0
    first: float | None = None
    last: float | None = None
    window: deque[float] = field(default_factory=deque)  # arrivals within RATE_WINDOW of the last one
    announced: list[tuple[float, float]] = field(default_factory=list)  # (429 sent at, Retry-After ends at)
    # For each arrival while an announced Retry-After ran: seconds since the earliest such 429 was sent.
    lateness: list[float] = field(default_factory=list)


class RequestStats:
    """Per-provider counters, fed by the server in arrival order with a monotonic clock (seconds)."""

    def __init__(self, *, grace: float = EARLY_GRACE, limits: Mapping[str, float] | None = None,
                 always: Iterable[str] = ()) -> None:
        self.grace = grace
        self.limits = dict(limits or {})  # the configured rate limits (per second), shown with the counters
        self._always = tuple(always)  # providers listed even before their first request
        self._providers: dict[str, _Provider] = {}

    def arrived(self, provider: str, now: float) -> None:
        """A request for ``provider`` arrived at ``now`` (before any knob acts on it)."""
        stats = self._providers.get(provider)
        if stats is None:
            stats = self._providers[provider] = _Provider()
        stats.requests += 1
        if stats.first is None:
            stats.first = now
        stats.last = now
        window = stats.window
        window.append(now)
        while window[0] <= now - RATE_WINDOW:
            window.popleft()
        stats.max_rate_per_s = max(stats.max_rate_per_s, len(window))
        if stats.announced:
            stats.announced = [(sent, until) for sent, until in stats.announced if until > now]
            if stats.announced:
                stats.lateness.append(now - min(sent for sent, _ in stats.announced))

    def rate_limited(self, provider: str, sent: float, retry_after: float) -> None:
        """A 429 announcing ``retry_after`` seconds left for ``provider`` at ``sent``."""
        stats = self._providers.get(provider)
        if stats is None:
            stats = self._providers[provider] = _Provider()
        stats.rate_limited += 1
        stats.announced = [(s, until) for s, until in stats.announced if until > sent]
        stats.announced.append((sent, sent + retry_after))

    def reset(self) -> None:
        self._providers.clear()

    def snapshot(self, grace: float | None = None) -> dict[str, Any]:
        """The ``GET /_emulator/stats`` document; ``early`` counted with ``grace`` (default: ``self.grace``)."""
        grace = self.grace if grace is None else grace
        names = sorted({*self._always, *self.limits, *self._providers})
        providers: dict[str, dict[str, Any]] = {}
        for name in names:
            stats = self._providers.get(name) or _Provider()
            rate = self.limits.get(name)
            busy = (stats.last - stats.first) if stats.first is not None and stats.last is not None else 0.0
            providers[name] = {
                "requests": stats.requests,
                "rate_limited": stats.rate_limited,
                "early": sum(1 for late in stats.lateness if late >= grace),
                "in_retry_after": len(stats.lateness),  # early ones and those within the grace
                "max_after_429_seconds": round(max(stats.lateness), 6) if stats.lateness else None,
                "max_rate_per_s": stats.max_rate_per_s,
                "busy_seconds": round(busy, 6),
                "limit_per_s": rate,
                "limit_burst": TokenBucket(rate).capacity if rate is not None else None,
            }
        return {"grace_seconds": grace, "window_seconds": RATE_WINDOW, "providers": providers}
