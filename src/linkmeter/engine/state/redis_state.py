"""Engine state in Redis: one client for this process, and the cache, limiter and breakers over it."""

from __future__ import annotations

from linkmeter.engine.budgets import BudgetRule
from linkmeter.engine.cache import DEFAULT_MAX_BYTES
from linkmeter.engine.state import DEFAULT_PREFIX, DEFAULT_TIMEOUT, EngineState
from linkmeter.engine.state.breakers import RedisCircuitBreakers
from linkmeter.engine.state.budgets import RedisBudgets
from linkmeter.engine.state.cache import RedisCache
from linkmeter.engine.state.limiter import RedisRateLimiter
from linkmeter.engine.state.link import RedisLink


def redis_state(url: str, *, prefix: str = DEFAULT_PREFIX, timeout: float = DEFAULT_TIMEOUT,
                near_bytes: int = DEFAULT_MAX_BYTES, budget_rule: BudgetRule | None = None) -> EngineState:
    """An EngineState whose cache, limiter, breakers and budgets live in Redis at ``url``, over one client (connection
    pool) for this process, closed by ``EngineState.aclose()`` (``Engine.close()`` calls it). Build it in
    the process (after any fork) that uses it; ``near_bytes``: the cache's near-cache in this process. Raises
    ValueError for an unusable URL."""
    link = RedisLink.from_url(url, prefix=prefix, timeout=timeout)
    return EngineState(cache=RedisCache(link, near_bytes=near_bytes), limiter=RedisRateLimiter(link),
                       breakers=RedisCircuitBreakers(link), budgets=RedisBudgets(link, budget_rule),
                       closer=link.aclose, shared=True, answering=lambda: not link.down)
