"""This process's memory of API key records: looked up once, reused for at most the cache lifetime (5 s), and
dropped at once when a revocation is announced (Redis pub/sub when scaled out, directly in this process)."""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)

MAX_ENTRIES = 10_000  # unknown ids are remembered too (a flood of guesses must not grow memory)
CHANNEL = "accounts:revoked"  # under LINKMETER_REDIS_PREFIX


@dataclass(frozen=True, slots=True)
class KeyRecord:
    """What verifying a key needs, read in one query (a dummy record for an id that does not exist)."""

    pk: int
    key_id: str
    user_id: int
    secret_hash: str
    scopes: tuple[str, ...]
    expires_at: float | None  # epoch seconds
    revoked: bool
    user_active: bool
    last_used_at: float | None
    exists: bool = True
    api_key: Any = None  # the ApiKey (with its user) once the key was found valid: what request.api_key is


class KeyCache:
    def __init__(self, lifetime: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.lifetime = lifetime
        self.clock = clock
        self._entries: OrderedDict[str, tuple[float, KeyRecord]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key_id: str) -> KeyRecord | None:
        with self._lock:
            entry = self._entries.get(key_id)
            if entry is None:
                return None
            if entry[0] <= self.clock():
                del self._entries[key_id]
                return None
            return entry[1]

    def put(self, record: KeyRecord) -> None:
        if self.lifetime <= 0:
            return
        with self._lock:
            self._entries[record.key_id] = (self.clock() + self.lifetime, record)
            self._entries.move_to_end(record.key_id)
            while len(self._entries) > MAX_ENTRIES:
                self._entries.popitem(last=False)

    def forget(self, key_id: str) -> None:
        with self._lock:
            self._entries.pop(key_id, None)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


class RevocationListener:
    """A daemon thread subscribed to the revocation channel: each message drops that key from ``cache``;
    after a (re)connection the whole cache is dropped, since messages may have been missed meanwhile."""

    def __init__(self, cache: KeyCache, redis_url: str, prefix: str) -> None:
        self.cache = cache
        self.redis_url = redis_url
        self.channel = prefix + CHANNEL
        self.ready = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="linkmeter-key-revocations", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        import redis

        backoff = 0.1
        while not self._stop.is_set():
            client = redis.Redis.from_url(self.redis_url, socket_connect_timeout=2, socket_timeout=2,
                                          health_check_interval=10)
            pubsub = client.pubsub(ignore_subscribe_messages=True)  # type: ignore[no-untyped-call]
            try:
                pubsub.subscribe(self.channel)
                self.cache.clear()
                self.ready.set()
                backoff = 0.1
                while not self._stop.is_set():
                    message = pubsub.get_message(timeout=1.0)
                    if message and message.get("type") == "message":
                        data = message["data"]
                        self.cache.forget(data.decode("ascii", "replace") if isinstance(data, bytes) else str(data))
            except (redis.RedisError, OSError) as exc:
                log.warning("key revocations: Redis unreachable (%s); the key cache's lifetime bounds revocation "
                            "meanwhile", type(exc).__name__)
                self.ready.clear()
                self._stop.wait(backoff)
                backoff = min(backoff * 2, 5.0)
            finally:
                pubsub.close()
                client.close()


def publish_revocation(redis_url: str, prefix: str, key_id: str) -> bool:
    """Tell every web process to drop ``key_id`` now. False when Redis could not be told (the cache lifetime
    still bounds how long a revoked key works)."""
    import redis

    client = redis.Redis.from_url(redis_url, socket_connect_timeout=2, socket_timeout=2)
    try:
        client.publish(prefix + CHANNEL, key_id)
        return True
    except (redis.RedisError, OSError) as exc:
        log.warning("key revocation of %s not announced: Redis unreachable (%s)", key_id, type(exc).__name__)
        return False
    finally:
        client.close()
