"""The rate limiter shared by every process through Redis: GCRA, one Lua script per ``reserve``."""

from __future__ import annotations

from linkmeter.engine.limits import MemoryRateLimiter
from linkmeter.engine.ports import RateLimiter
from linkmeter.engine.state.link import SERVER_NOW, RedisLink, RedisUnavailable, script_us

# KEYS: tat, pause. ARGV: interval us, burst, max_wait us, us left of a pause the caller knows of (its own 429,
# which may not have reached Redis yet). Returns the wait in us, or -1 (nothing reserved).
_RESERVE = SERVER_NOW + """
local interval, burst, max_wait = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local paused = math.max(tonumber(redis.call('GET', KEYS[2]) or '0'), now + tonumber(ARGV[4]))
local tat = math.max(tonumber(redis.call('GET', KEYS[1]) or '0'), now, paused)
local wait = math.max(0, math.max(tat - interval * (burst - 1), paused) - now)
if wait > max_wait then return -1 end
tat = tat + interval
redis.call('SET', KEYS[1], fmt(tat), 'PX', math.ceil((tat - now) / 1000) + 1000)
return math.ceil(wait)
"""

# KEYS: pause. ARGV: seconds in us, channel, name. A shorter pause never shortens a longer one; a pause that
# lengthens the current one is published ("p <name> <us left>") for every process's mirror. Returns us left.
_PAUSE = SERVER_NOW + """
local untl = now + tonumber(ARGV[1])
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
if untl > current then
  redis.call('SET', KEYS[1], fmt(untl), 'PX', math.ceil((untl - now) / 1000) + 1000)
  redis.call('PUBLISH', ARGV[2], 'p ' .. ARGV[3] .. ' ' .. fmt(untl - now))
  return fmt(untl - now)
end
return fmt(math.max(0, current - now))
"""

# KEYS: pause. Returns the us left of the pause.
_PAUSED_FOR = SERVER_NOW + """
return math.ceil(math.max(0, tonumber(redis.call('GET', KEYS[1]) or '0') - now))
"""



class RedisRateLimiter:
    """GCRA shared by every process using the same Redis and prefix (docs/architecture.md, "Shared state")."""

    def __init__(self, link: RedisLink, fallback: RateLimiter | None = None) -> None:
        self._link = link
        self._fallback = fallback or MemoryRateLimiter()
        client = link.client
        self._reserve, self._pause = client.register_script(_RESERVE), client.register_script(_PAUSE)
        self._paused_for = client.register_script(_PAUSED_FOR)

    def _keys(self, name: str) -> tuple[str, str]:
        base = f"{self._link.prefix}rl:{{{name}}}"  # {name}: a hash tag, both keys in one Cluster slot
        return f"{base}:tat", f"{base}:pause"

    async def reserve(self, name: str, rate: float, burst: int, max_wait: float) -> float | None:
        known = self._link.mirror.known_pause
        args: list[str | int] = [script_us(1 / rate), max(burst, 1), script_us(max_wait), script_us(known(name))]
        try:
            wait = int(await self._link.call("rate limiter", lambda: self._reserve(self._keys(name), args)))
        except RedisUnavailable:
            return await self._fallback.reserve(name, rate, burst, max_wait)
        if 0 <= wait < known(name) * 1e6:  # a 429 reached this process meanwhile: that slot is void
            return await self.reserve(name, rate, burst, max_wait)
        return None if wait < 0 else wait / 1e6

    async def pause(self, name: str, seconds: float) -> None:
        if seconds <= 0:
            return
        mirror = self._link.mirror
        # Known here before the round trip: this process's calls must not go out while it is on its way.
        mirror.note_pause(name, seconds)
        args = [script_us(seconds), mirror.channel, name]
        try:
            left = await self._link.call("rate limiter", lambda: self._pause(self._keys(name)[1:], args))
        except RedisUnavailable:
            await self._fallback.pause(name, seconds)
            return
        mirror.note_pause(name, int(left) / 1e6)  # a longer pause already set; the others learn ours by event

    async def paused_for(self, name: str, *, exact: bool = False) -> float:
        mirror = self._link.mirror
        left = mirror.paused_for(name)
        if left is None and mirror.ready and not exact:
            await mirror.sync("p", name, lambda: self._link.call(
                "rate limiter", lambda: self._paused_for(self._keys(name)[1:])))
            left = mirror.paused_for(name)
        if left is not None and (left > 0 or not exact):
            return left
        try:
            us = int(await self._link.call("rate limiter", lambda: self._paused_for(self._keys(name)[1:])))
        except RedisUnavailable:
            # Without Redis, what this process knows still holds: its own 429s and the events it received.
            return max(await self._fallback.paused_for(name), mirror.known_pause(name))
        mirror.note_pause(name, us / 1e6)
        return mirror.known_pause(name)  # with a 429 this process got while the read was on its way
