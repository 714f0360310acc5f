"""Mastodon statuses linking a URL and its trending-link uses, asked of several instances at once.

Each instance is asked concurrently under its own timeout, so a slow or dead one costs only its part of the
answer; the result says which instances answered. Each instance's ``X-RateLimit-Remaining``/``-Reset`` headers
(and its 429s) put that instance aside until its window resets; when every instance is aside the call is
``rate_limited`` and the engine pauses the provider until the first reset. This bookkeeping, and the trending
links (the same for every URL: fetched once per instance every ``TRENDS_TTL``), are kept per process.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from linkmeter.engine.http import HttpResponse, error_for_status
from linkmeter.engine.provider import (
    CallContext,
    Collected,
    Policy,
    Provider,
    ProviderConfig,
    ProviderError,
    Signals,
    SignalSpec,
)
from linkmeter.providers._mastodon_parse import (
    Status,
    exhausted,
    linking_statuses,
    merge_statuses,
    reset_time,
    trend_uses,
)

# Large general-purpose instances (LINKMETER_MASTODON_OPT_INSTANCES replaces them).
DEFAULT_INSTANCES = ("mastodon.social", "mastodon.online", "mstdn.social", "fosstodon.org")
INSTANCE_TIMEOUT = 5.0  # seconds per instance (LINKMETER_MASTODON_OPT_INSTANCE_TIMEOUT), within the call's
SEARCH_LIMIT = 40  # the most /api/v2/search returns
TRENDS_LIMIT = 20  # the most /api/v1/trends/links returns
TRENDS_TTL = 900.0
DEFAULT_BACKOFF = 60.0  # an instance that said "no more" without saying until when is left alone this long
HOST = re.compile(r"^(?=.{1,253}$)[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)+$")


@dataclass(slots=True)
class _Instance:
    """What this process knows of one instance: until when it is aside, its trending links."""

    aside_until: float = 0.0
    trends: tuple[float, Any] | None = None  # (fetched at, the answer)
    trends_lock: asyncio.Lock = field(default_factory=asyncio.Lock)


@dataclass(frozen=True, slots=True)
class _Answer:
    statuses: list[Status]
    trend_uses: int


@dataclass(frozen=True, slots=True)
class _Failure:
    message: str
    retryable: bool
    rate_limited_until: float | None = None


class MastodonProvider(Provider):
    name = "mastodon"
    order = 66
    group = "social"
    published_limits = "300 requests per 5 minutes per IP on each instance (X-RateLimit-* headers)"
    needs = ("url",)
    wants = ("page.canonical_url",)
    provides = {
        "mastodon.statuses": SignalSpec(int, "statuses linking the URL, across the instances that answered",
                                        "statuses"),
        "mastodon.reblogs": SignalSpec(int, "sum of the statuses' reblogs (boosts)", "reblogs", interactions=True),
        "mastodon.favourites": SignalSpec(int, "sum of the statuses' favourites", "favourites", interactions=True),
        "mastodon.replies": SignalSpec(int, "sum of the statuses' replies", "replies", interactions=True),
        "mastodon.trend_uses": SignalSpec(int, "uses of the URL in the instances' trending links (their history)",
                                          "uses"),
        "mastodon.instances_answered": SignalSpec(list, "the instances whose answers are counted"),
        "mastodon.instances_failed": SignalSpec(list, "the instances that failed, timed out or were rate limited"),
    }
    # REFERENCE §11b: 300 requests per 5 minutes per IP, on each instance; a call asks each instance once
    # (the trends once per TRENDS_TTL), so one call a second keeps every instance within its limit.
    policy = Policy(timeout=8.0, retries=1, rate_per_sec=1.0, burst=10, cache_ttl=3600.0)
    # Each instance's own API: "{instance}" is replaced by its host name; a base without it (the emulator's,
    # e.g. http://127.0.0.1:8765/mastodon) is followed by "/<instance>".
    default_base_url = "https://{instance}"

    def __init__(self, config: ProviderConfig | None = None, *, now: Callable[[], float] = time.time) -> None:
        super().__init__(config)
        self._now = now
        self._option_problem: str | None = None
        self.instances, self.instance_timeout = self._options()
        self._known: dict[str, _Instance] = {}

    def disabled_reason(self) -> str | None:
        return super().disabled_reason() or self._option_problem

    def key(self, signals: Signals) -> str:
        return str(signals.get("page.canonical_url") or signals["url"])

    async def collect(self, ctx: CallContext, signals: Signals) -> Collected:
        target = self.key(signals)
        # Each instance's part ends well within the attempt, whatever the policy's timeout is set to.
        within = min(self.instance_timeout, self.policy.timeout * 0.75)
        outcomes = await asyncio.gather(*(self._ask(ctx, host, target, within) for host in self.instances))
        answered = {host: o for host, o in zip(self.instances, outcomes, strict=True) if isinstance(o, _Answer)}
        failed = {host: o for host, o in zip(self.instances, outcomes, strict=True) if isinstance(o, _Failure)}
        if not answered:
            raise _nobody_answered(failed, self._now())
        statuses = merge_statuses([answer.statuses for answer in answered.values()])
        signals_out = {
            "mastodon.statuses": len(statuses),
            "mastodon.reblogs": sum(status.reblogs for status in statuses),
            "mastodon.favourites": sum(status.favourites for status in statuses),
            "mastodon.replies": sum(status.replies for status in statuses),
            "mastodon.trend_uses": sum(answer.trend_uses for answer in answered.values()),
            "mastodon.instances_answered": list(answered),
            "mastodon.instances_failed": list(failed),
        }
        raw = {"statuses": [vars_of(status) for status in statuses],
               "failures": {host: failure.message for host, failure in failed.items()}}
        return Collected(signals=signals_out, raw=raw)

    async def _ask(self, ctx: CallContext, host: str, target: str, within: float) -> _Answer | _Failure:
        known = self._known.setdefault(host, _Instance())
        now = self._now()
        if known.aside_until > now:
            return _Failure(f"rate limited for {known.aside_until - now:.0f}s more", True, known.aside_until)
        try:
            async with asyncio.timeout(within):
                search = await self._get(ctx, host, "/api/v2/search",
                                         {"q": target, "type": "statuses", "limit": str(SEARCH_LIMIT)})
                trends = await self._trends(ctx, host)  # from this process's copy, but once per TRENDS_TTL
                return _Answer(linking_statuses(search, target), trend_uses(trends, target))
        except TimeoutError:
            return _Failure(f"no answer within {within:.3g}s", True)
        except _InstanceAside as aside:
            return _Failure(str(aside), True, aside.until)
        except ProviderError as exc:
            return _Failure(exc.message, exc.retryable)

    async def _trends(self, ctx: CallContext, host: str) -> Any:
        """The instance's trending links, fetched at most once per TRENDS_TTL (concurrent calls share a fetch)."""
        known = self._known[host]
        async with known.trends_lock:
            if known.trends is None or self._now() - known.trends[0] >= TRENDS_TTL:
                answer = await self._get(ctx, host, "/api/v1/trends/links", {"limit": str(TRENDS_LIMIT)},
                                         missing=[])
                known.trends = (self._now(), answer)
            return known.trends[1]

    async def _get(self, ctx: CallContext, host: str, path: str, params: dict[str, str], *,
                   missing: Any = None) -> Any:
        """GET ``path`` of ``host``'s API; notes its rate-limit headers. ``missing`` is the answer to a 404 (an
        instance with trends switched off), when given."""
        url = instance_base(ctx.config.base_url, host) + path
        response = await ctx.http.request("GET", url, params=params, headers={"Accept": "application/json"},
                                          accept=(200, 404, 429))
        self._note_limits(host, response)
        if response.status == 429:
            raise _InstanceAside(f"HTTP 429 from {host}", self._known[host].aside_until)
        if response.status == 404:
            if missing is not None:
                return missing
            raise error_for_status(404, response.headers, response.url, response.text())
        return response.json()

    def _note_limits(self, host: str, response: HttpResponse) -> None:
        if response.status == 429 or exhausted(response.headers):
            now = self._now()
            self._known[host].aside_until = reset_time(response.headers, now) or now + DEFAULT_BACKOFF

    def _options(self) -> tuple[tuple[str, ...], float]:
        extra = self.config.extra
        hosts = tuple(dict.fromkeys(h.strip().lower().rstrip(".") for h in extra.get("instances", "").split(",")
                                    if h.strip()))
        bad = [host for host in hosts if not HOST.match(host)]
        if bad:
            self._option_problem = (f"LINKMETER_MASTODON_OPT_INSTANCES must list host names, comma-separated: "
                                    f"{', '.join(bad)} is not one")
        text = extra.get("instance_timeout", "").strip()
        timeout = INSTANCE_TIMEOUT
        if text:
            try:
                timeout = float(text)
            except ValueError:
                timeout = -1.0
            if not 0 < timeout < float("inf"):
                self._option_problem = (f"LINKMETER_MASTODON_OPT_INSTANCE_TIMEOUT must be a positive number of "
                                        f"seconds, not {text!r}")
                timeout = INSTANCE_TIMEOUT
        return hosts or DEFAULT_INSTANCES, timeout


class _InstanceAside(Exception):
    def __init__(self, message: str, until: float) -> None:
        super().__init__(message)
        self.until = until


def instance_base(base_url: str, host: str) -> str:
    """The API root of ``host``: the base with ``{instance}`` replaced, or the base followed by ``/<host>``."""
    base = base_url.rstrip("/")
    return base.replace("{instance}", host) if "{instance}" in base else f"{base}/{host}"


def vars_of(status: Status) -> dict[str, Any]:
    return {"uri": status.uri, "reblogs": status.reblogs, "favourites": status.favourites, "replies": status.replies}


def _nobody_answered(failed: dict[str, _Failure], now: float) -> ProviderError:
    detail = "; ".join(f"{host}: {failure.message}" for host, failure in failed.items())
    waits = [failure.rate_limited_until for failure in failed.values()]
    if waits and all(until is not None for until in waits):
        first = min(until for until in waits if until is not None)
        return ProviderError(f"every Mastodon instance is rate limited ({detail})", retryable=True,
                             retry_after=max(1.0, first - now), rate_limited=True)
    return ProviderError(f"no Mastodon instance answered ({detail})",
                         retryable=any(failure.retryable for failure in failed.values()))
