"""The circuit breakers shared by every process through Redis: one hash per provider, changed by Lua scripts."""

from __future__ import annotations

import math

from linkmeter.engine.limits import MemoryCircuitBreakers
from linkmeter.engine.ports import BreakerState, CircuitBreakers
from linkmeter.engine.state.events import MirroredBreaker
from linkmeter.engine.state.link import SERVER_NOW, RedisLink, RedisUnavailable, script_text, script_us

BREAKER_IDLE_TTL = 86_400.0

# Breaker hash fields: f = consecutive failures, o = opened at (us), p = the probe's lease ends (us).
# A breaker's state as an event for the mirrors: "b <name> <seq> <failures> <opened us ago, or -1>".
# KEYS: breaker, seq. ARGV[4]: the name.
_STATE_EVENT = """
local function state_event(seq)
  local f = tonumber(redis.call('HGET', KEYS[1], 'f') or '0')
  local o = redis.call('HGET', KEYS[1], 'o')
  local ago = -1
  if o then ago = now - tonumber(o) end
  return 'b ' .. ARGV[4] .. ' ' .. seq .. ' ' .. f .. ' ' .. fmt(ago)
end
"""

# KEYS: breaker, seq. ARGV: cooldown us, lease us, idle ttl ms. Returns 1 (go ahead) or 0.
_ALLOW = SERVER_NOW + """
local opened = redis.call('HGET', KEYS[1], 'o')
if not opened then return 1 end
if now - tonumber(opened) < tonumber(ARGV[1]) then return 0 end
local lease = redis.call('HGET', KEYS[1], 'p')
if lease and tonumber(lease) > now then return 0 end
redis.call('HSET', KEYS[1], 'p', fmt(now + tonumber(ARGV[2])))
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1
"""

# KEYS: breaker, seq. ARGV: success (1/0), threshold, idle ttl ms, name, channel. Returns the state event,
# published when the state changed. The seq key has no expiry: one small key per provider name.
_RECORD = SERVER_NOW + _STATE_EVENT + """
if ARGV[1] == '1' then
  if redis.call('DEL', KEYS[1]) == 0 then return state_event(redis.call('GET', KEYS[2]) or '0') end
else
  local failures = redis.call('HINCRBY', KEYS[1], 'f', 1)
  if redis.call('HEXISTS', KEYS[1], 'p') == 1 or failures >= tonumber(ARGV[2]) then
    redis.call('HSET', KEYS[1], 'o', fmt(now))
    redis.call('HDEL', KEYS[1], 'p')
  end
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
end
local event = state_event(redis.call('INCR', KEYS[2]))
redis.call('PUBLISH', ARGV[5], event)
return event
"""

# KEYS: breaker, seq. ARGV[4]: the name. Returns the state event (for a mirror to start from).
_READ = SERVER_NOW + _STATE_EVENT + """
return state_event(redis.call('GET', KEYS[2]) or '0')
"""

# KEYS: breaker. ARGV: cooldown us. Returns 0 closed, 1 open, 2 half open.
_STATE = SERVER_NOW + """
local opened = redis.call('HGET', KEYS[1], 'o')
if not opened then return 0 end
if redis.call('HEXISTS', KEYS[1], 'p') == 1 or now - tonumber(opened) >= tonumber(ARGV[1]) then return 2 end
return 1
"""

_STATES = {0: BreakerState.CLOSED, 1: BreakerState.OPEN, 2: BreakerState.HALF_OPEN}


class RedisCircuitBreakers:
    """Breakers shared by every process using the same Redis and prefix (docs/architecture.md, "Shared state").

    ``probe_lease``: how long a probe may take before another one is let through (None: the cooldown)."""

    def __init__(self, link: RedisLink, fallback: CircuitBreakers | None = None, *,
                 probe_lease: float | None = None, idle_ttl: float = BREAKER_IDLE_TTL) -> None:
        self._link = link
        self._fallback = fallback or MemoryCircuitBreakers()
        self._lease = probe_lease
        self._ttl_ms = max(1, math.ceil(idle_ttl * 1000))
        client = link.client
        self._allow, self._record = client.register_script(_ALLOW), client.register_script(_RECORD)
        self._read, self._state = client.register_script(_READ), client.register_script(_STATE)

    def _keys(self, name: str) -> list[str]:
        base = f"{self._link.prefix}cb:{{{name}}}"
        return [base, f"{base}:seq"]

    async def _mirrored(self, name: str) -> MirroredBreaker | None:
        mirror = self._link.mirror
        entry = mirror.breaker(name)
        if entry is None and mirror.ready:
            await mirror.sync("b", name, lambda: self._link.call(
                "breakers", lambda: self._read(self._keys(name), [0, 0, 0, name])))
            entry = mirror.breaker(name)
        return entry

    async def allow(self, name: str, threshold: int, cooldown: float) -> bool:
        entry = await self._mirrored(name)
        if entry is not None:
            if entry.opened_at is None:
                return True
            if self._link.mirror.now() - entry.opened_at < cooldown:
                return False
            # After the cooldown, Redis decides which one call (in all processes) is the probe.
        lease = cooldown if self._lease is None else self._lease
        args: list[str | int] = [script_us(cooldown), script_us(max(lease, 0.001)), self._ttl_ms]
        try:
            return bool(int(await self._link.call("breakers", lambda: self._allow(self._keys(name), args))))
        except RedisUnavailable:
            return await self._fallback.allow(name, threshold, cooldown)

    async def record(self, name: str, success: bool, threshold: int) -> None:
        if success:
            entry = await self._mirrored(name)
            if entry is not None and entry.failures == 0 and entry.opened_at is None:
                return  # nothing to reset anywhere
        mirror = self._link.mirror
        args: list[str | int] = [int(success), threshold, self._ttl_ms, name, mirror.channel]
        try:
            event = await self._link.call("breakers", lambda: self._record(self._keys(name), args))
        except RedisUnavailable:
            await self._fallback.record(name, success, threshold)
            return
        mirror.apply_breaker(script_text(event))  # ours at once; the others' through the event

    async def state(self, name: str, cooldown: float) -> BreakerState:
        try:
            code = await self._link.call("breakers", lambda: self._state(self._keys(name)[:1], [script_us(cooldown)]))
        except RedisUnavailable:
            return await self._fallback.state(name, cooldown)
        return _STATES[int(code)]
