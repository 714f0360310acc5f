"""The engine's ports: what it needs from HTTP, DNS and the state calls share, as small typed contracts.

One module for every contract, importing nothing from linkmeter at run time (aiohttp's ``abc.py`` does the
same): the HTTP and DNS response types are named only for the type checker. Implementations live beside
the code they wrap:

- ``HttpApi``: ``http.HttpClient`` (the SSRF-guarded aiohttp client); ``DnsApi``: ``dns.DnsClient``. A
  provider sees them through ``CallContext`` (provider.py); tests may hand it anything with these methods.
- ``ResultCache`` (+ ``PeekableCache``, ``CountingCache``): ``cache.MemoryCache``, ``state.cache.RedisCache``.
- ``RateLimiter``: ``limits.MemoryRateLimiter``, ``state.limiter.RedisRateLimiter``.
- ``CircuitBreakers``: ``limits.MemoryCircuitBreakers``, ``state.breakers.RedisCircuitBreakers``.
- ``ProviderBudgets``: ``budgets.MemoryBudgets``, ``state.budgets.RedisBudgets``.

``linkmeter.engine.state.EngineState`` holds one of each of the last four for every call to share.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from collections.abc import Sequence

    from linkmeter.engine.dns import DnsAnswer
    from linkmeter.engine.http import HttpResponse, PageFetch


class HttpApi(Protocol):
    """The HTTP a provider may use (``HttpClient``): every request behind the SSRF guard, bodies bounded."""

    async def request(
        self,
        method: str,
        url: str,
        *,
        params: Mapping[str, str] | list[tuple[str, str]] | None = None,
        headers: Mapping[str, str] | None = None,
        data: Mapping[str, str] | bytes | None = None,
        json_body: Any = None,
        accept: Collection[int] = (200,),
        max_bytes: int | None = None,
    ) -> HttpResponse:
        """One API call; a status outside ``accept`` raises ProviderError (429/5xx retryable)."""
        ...

    async def fetch_page(self, url: str, *, max_bytes: int | None = None) -> PageFetch:
        """GET a user-supplied URL; any status is a result, a body over ``max_bytes`` is cut."""
        ...


class DnsApi(Protocol):
    """The DNS a provider may use (``DnsClient``)."""

    async def query(self, name: str, rdtype: str) -> DnsAnswer:
        """One record type; NXDOMAIN and no-data are answers, failures raise ProviderError."""
        ...


@dataclass(frozen=True, slots=True)
class CacheEntry:
    """A successful call's result as a cache keeps it (``stored_at``: wall-clock seconds)."""

    signals: dict[str, Any]
    raw: Any
    stored_at: float


class ResultCache(Protocol):
    """Where successful provider results live for their TTL. Keys are ``provider:key`` strings."""

    async def get(self, key: str) -> CacheEntry | None: ...

    async def set(self, key: str, entry: CacheEntry, ttl: float) -> None: ...


class PeekableCache(Protocol):
    """A cache that holds some entries in this process and can hand them out without I/O (``MemoryCache``,
    the Redis cache's near-cache): the engine then finalises such a call at once, without a task."""

    def peek(self, key: str) -> CacheEntry | None:
        """The live entry when this process holds it; None means "ask ``get``", not "absent"."""
        ...


class CountingCache(Protocol):
    """A cache that can tell how many entries a provider has in it (for the providers page)."""

    async def entries(self, provider: str, *, limit: int) -> int | None:
        """Live entries of ``provider`` (keys ``provider:...``), counting stops past ``limit`` (so a result of
        ``limit + 1`` means "more than limit"); None when the cache cannot tell right now."""
        ...


class RateLimiter(Protocol):
    async def reserve(self, name: str, rate: float, burst: int, max_wait: float) -> float | None:
        """Reserve one call slot; return the seconds to wait before using it, or None (nothing reserved)
        when the wait would exceed ``max_wait``. A pause (below) delays every slot until it ends."""
        ...

    async def pause(self, name: str, seconds: float) -> None:
        """The provider said "slow down" (429 + Retry-After): no call to it for ``seconds``, anywhere."""
        ...

    async def paused_for(self, name: str, *, exact: bool = False) -> float:
        """Seconds left of a pause (0.0 when none). ``exact``: from the shared state itself, not from a
        process's copy of it that may be a moment behind (the last check before a call that waited goes out)."""
        ...


class BreakerState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class CircuitBreakers(Protocol):
    """Open after ``threshold`` consecutive failures; after ``cooldown`` one probe goes through."""

    async def allow(self, name: str, threshold: int, cooldown: float) -> bool: ...

    async def record(self, name: str, success: bool, threshold: int) -> None: ...

    async def state(self, name: str, cooldown: float) -> BreakerState: ...


PERIOD_NAMES = {3600: "hour", 86400: "day"}


@dataclass(frozen=True, slots=True)
class BudgetWindow:
    """One budget's current window: its limit, what is used, and when it refills (epoch seconds)."""

    period: int
    limit: int
    used: int
    resets_at: float

    @property
    def name(self) -> str:
        return PERIOD_NAMES.get(self.period, f"{self.period}s")

    @property
    def remaining(self) -> int:
        return max(0, self.limit - self.used)


@dataclass(frozen=True, slots=True)
class BudgetRefusal:
    """Why a call may not go out: this budget is spent for its priority until ``resets_at`` (epoch seconds)."""

    period: int
    limit: int
    allowance: int
    resets_at: float

    def message(self) -> str:
        name = PERIOD_NAMES.get(self.period, f"{self.period}s")
        at = datetime.fromtimestamp(self.resets_at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        share = "" if self.allowance >= self.limit else f" (this priority's share: {self.allowance})"
        return f"{name}ly budget of {self.limit} requests spent{share}; it refills at {at}"


class ProviderBudgets(Protocol):
    """Requests per provider and calendar hour or day (UTC), with a reserve for higher priorities
    (``engine/budgets.py``). ``limits``: (period seconds, limit) pairs."""

    async def spend(self, name: str, limits: Sequence[tuple[int, int]], priority: int) -> BudgetRefusal | None:
        """Count one request against every budget of ``name``; a refusal (nothing counted) when one of them
        is spent for ``priority``."""
        ...

    async def usage(self, name: str, limits: Sequence[tuple[int, int]]) -> list[BudgetWindow]:
        """Each budget's current window: used, remaining, when it refills."""
        ...
