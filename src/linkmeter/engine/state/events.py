"""This process's mirror of the breaker states and pauses all processes share in Redis, kept by pub/sub.

Breakers and 429 pauses change rarely, but a call asks about them twice or three times, so asking Redis each
time doubled the engine's CPU per call (docs/benchmarks.md). Instead every change is made by a Lua script
that also PUBLISHes the new state on one channel (``<prefix>events``); each process subscribes once and
answers ``allow``/``record``/``paused_for`` from its mirror, going to Redis only when something is to be
changed or decided there (a failure, a success after failures, a probe after the cooldown, a pause).

Events are ``b <name> <seq> <failures> <opened_us_ago|-1>`` (a breaker's whole state after a change; ``seq``
orders them per breaker, so a late event never overwrites a newer state) and ``p <name> <us_left>`` (a pause;
pauses only ever grow, so they need no order). A name's entry is trusted only once a read of its state from
Redis was applied after the subscription began ("synced"): before that, and whenever the subscription is not
established, the stores ask Redis on every call as if there were no mirror. Another process sees a change
as soon as the event reaches it (well under a millisecond on one network); calls already on their way are
not recalled, exactly as when every call asked Redis.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from redis.exceptions import RedisError

log = logging.getLogger(__name__)

HEARTBEAT = 5.0  # seconds without any message before the subscription is pinged
MISSED_HEARTBEATS = 3  # then this many heartbeats without an answer: the subscription is dead, re-subscribe


@dataclass(slots=True)
class MirroredBreaker:
    """A breaker's last known state. ``opened_at`` is on this process's monotonic clock."""

    seq: int = -1
    failures: int = 0
    opened_at: float | None = None
    synced: bool = False


class StateMirror:
    """Subscribes (lazily, on first use, in the running loop) and applies events; see the module docstring.

    ``subscribe`` opens a pub/sub object for the channel (``client.pubsub()``), ``retry_after`` is how long
    to wait before re-subscribing after a failure."""

    def __init__(self, subscribe: Callable[[], Any], channel: str, *, retry_after: float = 1.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._subscribe = subscribe
        self.channel = channel
        self._retry_after = retry_after
        self._clock = clock
        self._task: asyncio.Task[None] | None = None
        self._ready = False
        self._breakers: dict[str, MirroredBreaker] = {}
        self._paused_until: dict[str, float] = {}
        self._pauses_synced: set[str] = set()
        self._syncing: set[str] = set()
        self._closed = False

    @property
    def ready(self) -> bool:
        """True while the subscription is established (events are flowing)."""
        self._ensure_started()
        return self._ready

    def now(self) -> float:
        return self._clock()

    def breaker(self, name: str) -> MirroredBreaker | None:
        """The synced mirror of a breaker, or None (ask Redis)."""
        if not self.ready:
            return None
        entry = self._breakers.get(name)
        return entry if entry is not None and entry.synced else None

    def paused_for(self, name: str) -> float | None:
        """Seconds left of a pause from the mirror, or None (ask Redis). A pause this process knows of (its own
        429, or an event) counts even before the name is synced: pauses only grow, so it holds whatever
        Redis says."""
        ready = self.ready
        left = self.known_pause(name)
        if left > 0 or (ready and name in self._pauses_synced):
            return left
        return None

    def known_pause(self, name: str) -> float:
        """Seconds left of the longest pause this process has noted for ``name`` (0.0: none known here)."""
        return max(0.0, self._paused_until.get(name, 0.0) - self._clock())

    async def sync(self, kind: str, name: str, read: Callable[[], Awaitable[Any]]) -> None:
        """Read a name's state from Redis (``read``: a breaker event or a pause's us left) and mark it synced;
        one read per name at a time; failures are left to the caller's own Redis call to report."""
        key = f"{kind}:{name}"
        if not self.ready or key in self._syncing:
            return
        self._syncing.add(key)
        try:
            value = await read()
        except Exception:  # the store's own call reports Redis failures; the name just stays unsynced
            return
        finally:
            self._syncing.discard(key)
        if not self._ready:
            return  # the subscription broke meanwhile: this read may already be stale
        if isinstance(value, bytes):
            value = value.decode()
        if kind == "b":
            self.apply_breaker(str(value), synced=True)
        else:
            self.note_pause(name, int(value) / 1e6)
            self._pauses_synced.add(name)

    def apply(self, message: str) -> None:
        if message.startswith("b "):
            self.apply_breaker(message)
        elif message.startswith("p "):
            _, name, left = message.split(" ")
            self.note_pause(name, int(left) / 1e6)

    def apply_breaker(self, message: str, *, synced: bool = False) -> None:
        """Apply ``b <name> <seq> <failures> <opened_us_ago|-1>`` if it is newer than what we have."""
        _, name, seq_text, failures, ago = message.split(" ")
        entry = self._breakers.setdefault(name, MirroredBreaker())
        seq = int(seq_text)
        if seq > entry.seq:
            entry.seq = seq
            entry.failures = int(failures)
            opened_ago = int(ago)
            entry.opened_at = None if opened_ago < 0 else self._clock() - opened_ago / 1e6
        if synced:
            entry.synced = True

    def note_pause(self, name: str, seconds: float) -> None:
        until = self._clock() + seconds
        if until > self._paused_until.get(name, 0.0):
            self._paused_until[name] = until

    def _ensure_started(self) -> None:
        if self._task is None and not self._closed:
            try:
                self._task = asyncio.get_running_loop().create_task(self._run(), name="redis-state-mirror")
            except RuntimeError:  # no running loop (a synchronous caller): no mirror, ask Redis
                return

    def _reset(self) -> None:
        # Breakers can move either way while no event reaches us, so their mirror starts over. Known pauses are
        # kept: a pause only ever grows, so what this process learnt (its own 429, an event) still holds, and
        # forgetting it would let calls out while a 429 of ours is still on its way to Redis.
        self._ready = False
        self._breakers.clear()
        self._pauses_synced.clear()

    async def _run(self) -> None:
        failures = 0
        while not self._closed:
            pubsub = self._subscribe()
            try:
                await pubsub.subscribe(self.channel)
                # The confirmation: from here on every event reaches us, so reads made now are safe to mirror.
                while (await pubsub.get_message(timeout=HEARTBEAT)) is None:
                    pass
                self._reset()
                self._ready = True
                if failures:
                    log.info("Redis state events flowing again: breakers and pauses mirrored")
                failures = 0
                await self._listen(pubsub)
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError, TimeoutError, ValueError) as exc:
                failures += 1
                if failures == 1:
                    log.warning("Redis state events unavailable (%s: %s): asking Redis on every call until "
                                "they are back", type(exc).__name__, exc)
            finally:
                self._reset()
                with contextlib.suppress(Exception):
                    await pubsub.aclose()
            await asyncio.sleep(min(self._retry_after * max(failures, 1), 30.0))

    async def _listen(self, pubsub: Any) -> None:
        silent = 0
        while True:
            message = await pubsub.get_message(timeout=HEARTBEAT)
            if message is None:
                silent += 1
                if silent > MISSED_HEARTBEATS:
                    raise TimeoutError(f"no answer from Redis on the events channel for {silent * HEARTBEAT:g}s")
                await pubsub.ping()
                continue
            silent = 0
            if message.get("type") == "message":
                data = message["data"]
                try:
                    self.apply(data.decode() if isinstance(data, bytes) else str(data))
                except ValueError:
                    log.debug("unreadable state event %r ignored", data)

    async def aclose(self) -> None:
        self._closed = True
        self._reset()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
