"""What calls share: the result cache, the rate limiter, the circuit breakers and the budgets (``EngineState``).

In memory by default (one process); ``redis_state.redis_state(url)`` builds them in Redis, shared by every
worker process: ``link`` (the client and its failure policy), ``limiter``, ``breakers``, ``cache``, ``budgets``, with
``events`` (each process's pub/sub mirror of breakers and pauses) and ``pipeline`` (auto-pipelining).
Design and failure policy: docs/architecture.md, "Shared state".
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from linkmeter.engine.budgets import MemoryBudgets
from linkmeter.engine.cache import MemoryCache
from linkmeter.engine.limits import MemoryCircuitBreakers, MemoryRateLimiter
from linkmeter.engine.ports import CircuitBreakers, ProviderBudgets, RateLimiter, ResultCache

# Here, not in link.py, so that the settings can name them without importing redis.
DEFAULT_PREFIX = "linkmeter:"  # LINKMETER_REDIS_PREFIX: namespaces every key linkmeter writes
DEFAULT_TIMEOUT = 0.5  # LINKMETER_REDIS_TIMEOUT: seconds, per connect and per read


@dataclass(slots=True)
class EngineState:
    """What calls share: caches, limits and breakers (in memory here; in Redis when workers scale out:
    ``linkmeter.engine.state.redis_state.redis_state``). ``closer`` releases what the state holds (a Redis
    pool)."""

    cache: ResultCache = field(default_factory=MemoryCache)
    limiter: RateLimiter = field(default_factory=MemoryRateLimiter)
    breakers: CircuitBreakers = field(default_factory=MemoryCircuitBreakers)
    budgets: ProviderBudgets = field(default_factory=MemoryBudgets)
    closer: Callable[[], Awaitable[None]] | None = None
    shared: bool = False  # held where other processes see it too (Redis), not in this process's memory
    answering: Callable[[], bool] | None = None  # whether that shared store answered its last call

    async def aclose(self) -> None:
        if self.closer is not None:
            await self.closer()

    def reachable(self) -> bool:
        """False while the shared store is failing (the stores then answer from this process's own state)."""
        return self.answering is None or self.answering()
