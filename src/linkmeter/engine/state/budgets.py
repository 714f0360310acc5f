"""Provider budgets shared by every process through Redis: one counter per provider and calendar window,
checked and counted by one Lua script (the same rule as ``engine.budgets.MemoryBudgets``)."""

from __future__ import annotations

from linkmeter.engine.budgets import BudgetRefusal, BudgetRule, BudgetWindow, Limits, MemoryBudgets, window_start
from linkmeter.engine.state.link import SERVER_NOW, RedisLink, RedisUnavailable

# KEYS: one base key per budget (its window's start is appended: the windows are the server's calendar hours
# and days). ARGV: period seconds and allowance, per key. Every budget must have room: then each counts one.
# Returns {index of the spent budget (0: none), now in seconds}.
_SPEND = SERVER_NOW + """
local secs = math.floor(now / 1000000)
local keys = {}
for i, base in ipairs(KEYS) do
  local period, allowance = tonumber(ARGV[2 * i - 1]), tonumber(ARGV[2 * i])
  local key = base .. ':' .. (secs - secs % period)
  if tonumber(redis.call('GET', key) or '0') >= allowance then return {i, secs} end
  keys[i] = {key, period}
end
for _, k in ipairs(keys) do
  redis.call('INCR', k[1])
  redis.call('EXPIRE', k[1], k[2] + 60)
end
return {0, secs}
"""

# KEYS: base keys as above. ARGV: period seconds per key. Returns {now in seconds, used per key...}.
_USAGE = SERVER_NOW + """
local secs = math.floor(now / 1000000)
local out = {secs}
for i, base in ipairs(KEYS) do
  local period = tonumber(ARGV[i])
  out[i + 1] = tonumber(redis.call('GET', base .. ':' .. (secs - secs % period)) or '0')
end
return out
"""


class RedisBudgets:
    """Budgets every process using the same Redis and prefix spends together; while Redis fails, this
    process's own ``MemoryBudgets`` (each process then holds the budget on its own)."""

    def __init__(self, link: RedisLink, rule: BudgetRule | None = None,
                 fallback: MemoryBudgets | None = None) -> None:
        self.rule = rule or BudgetRule()
        self._link = link
        self._fallback = fallback or MemoryBudgets(self.rule)
        self._spend = link.client.register_script(_SPEND)
        self._usage = link.client.register_script(_USAGE)

    def _keys(self, name: str, limits: Limits) -> list[str]:
        return [f"{self._link.prefix}bg:{{{name}}}:{period}" for period, _ in limits]

    async def spend(self, name: str, limits: Limits, priority: int) -> BudgetRefusal | None:
        if not limits:
            return None
        allowances = [self.rule.allowance(limit, priority) for _, limit in limits]
        args = [str(v) for (period, _), allowance in zip(limits, allowances, strict=True) for v in (period, allowance)]
        try:
            spent, now = await self._link.call("budgets", lambda: self._spend(self._keys(name, limits), args))
        except RedisUnavailable:
            return await self._fallback.spend(name, limits, priority)
        index = int(spent)
        if not index:
            return None
        period, limit = limits[index - 1]
        return BudgetRefusal(period, limit, allowances[index - 1], window_start(int(now), period) + period)

    async def usage(self, name: str, limits: Limits) -> list[BudgetWindow]:
        if not limits:
            return []
        try:
            now, *used = await self._link.call(
                "budgets", lambda: self._usage(self._keys(name, limits), [str(p) for p, _ in limits]))
        except RedisUnavailable:
            return await self._fallback.usage(name, limits)
        return [BudgetWindow(period, limit, int(n), window_start(int(now), period) + period)
                for (period, limit), n in zip(limits, used, strict=True)]
