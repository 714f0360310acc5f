"""Verifying an API key: its shape and checksum first (no query), then the record (this process's cache, else
one query), then the keyed hash compared in constant time. An unknown id is checked against a dummy record, so
it costs what a wrong secret costs and answers the same ``invalid_key``."""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import time
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib.auth.models import User

from linkmeter.web.accounts import keys
from linkmeter.web.accounts.failures import FailureLimiter
from linkmeter.web.accounts.keycache import KeyCache, KeyRecord, RevocationListener
from linkmeter.web.accounts.models import ApiKey

log = logging.getLogger(__name__)

LAST_USED_EVERY = 60.0  # seconds: last_used_at is written at most this often per key and process


@dataclass(frozen=True, slots=True)
class KeyCheck:
    code: str | None  # None: valid
    message: str = ""
    record: KeyRecord | None = None
    api_key: ApiKey | None = None

    @property
    def ok(self) -> bool:
        return self.code is None


def server_secret() -> bytes:
    return hashlib.sha256(settings.LINKMETER_ACCOUNTS["KEY_HASH_SECRET"].encode()).digest()


class Verifier:
    """One per process (``verifier()``): the key cache, the revocation listener, the failure limiter."""

    def __init__(self) -> None:
        conf = settings.LINKMETER_ACCOUNTS
        self.cache = KeyCache(conf["KEY_CACHE_SECONDS"])
        self.failures = FailureLimiter(conf["AUTH_FAILURES_PER_MINUTE"])
        self.secret = server_secret()
        self.listener: RevocationListener | None = None
        self._api_keys: dict[str, ApiKey] = {}  # key id -> the model instance last read (for request.api_key)
        _, dummy = keys.generate()
        self._dummy_hash = keys.hash_secret(self.secret, dummy)
        redis = redis_location()
        if redis is not None:
            self.listener = RevocationListener(self.cache, *redis)
            self.listener.start()

    def _dummy(self, key_id: str) -> KeyRecord:
        return KeyRecord(pk=0, key_id=key_id, user_id=0, secret_hash=self._dummy_hash, scopes=(),
                         expires_at=None, revoked=True, user_active=False, last_used_at=None, exists=False)

    def lookup(self, key_id: str) -> KeyRecord:
        """The key's record from the database (a dummy when there is no such key). Synchronous."""
        found = ApiKey.objects.select_related("user", "user__account").filter(id_public=key_id).first()
        if found is None:
            return self._dummy(key_id)
        self._api_keys[key_id] = found
        return record_of(found)

    def _verdict(self, parsed: keys.ParsedKey, record: KeyRecord) -> KeyCheck:
        matches = keys.hashes_equal(keys.hash_secret(self.secret, parsed), record.secret_hash)
        if not matches or not record.exists:
            return KeyCheck("invalid_key", "this API key is not valid")
        if record.revoked:
            return KeyCheck("key_revoked", f"API key {record.key_id} has been revoked", record)
        if record.expires_at is not None and record.expires_at <= time.time():
            return KeyCheck("key_expired", f"API key {record.key_id} has expired", record)
        if not record.user_active:
            return KeyCheck("account_disabled", "the account of this API key is disabled", record)
        return KeyCheck(None, "", record, self._api_keys.get(record.key_id))

    def check(self, presented: str) -> KeyCheck:
        """Synchronous verification (may query the database)."""
        parsed = keys.parse(presented)
        if parsed is None:
            return KeyCheck("malformed_key", "this is not an API key (wrong shape or checksum)")
        record = self.cache.get(parsed.key_id)
        if record is None:
            record = self.lookup(parsed.key_id)
            self.cache.put(record)
        verdict = self._verdict(parsed, record)
        if verdict.ok:
            self._touch(record)
        return verdict

    async def acheck(self, presented: str) -> KeyCheck:
        """As ``check``, on the event loop: a cached record costs no thread hop and no query."""
        parsed = keys.parse(presented)
        if parsed is None:
            return KeyCheck("malformed_key", "this is not an API key (wrong shape or checksum)")
        record = self.cache.get(parsed.key_id)
        if record is None:
            record = await sync_to_async(self.lookup)(parsed.key_id)
            self.cache.put(record)
        verdict = self._verdict(parsed, record)
        if verdict.ok and _stale(record):
            await sync_to_async(self._touch)(record)
        return verdict

    def _touch(self, record: KeyRecord) -> None:
        """Write last_used_at, at most every LAST_USED_EVERY seconds per key (in this process)."""
        if not _stale(record):
            return
        now = datetime.now(UTC)
        ApiKey.objects.filter(pk=record.pk).update(last_used_at=now)
        self.cache.put(replace(record, last_used_at=now.timestamp()))
        if (instance := self._api_keys.get(record.key_id)) is not None:
            instance.last_used_at = now

    def forget(self, key_id: str) -> None:
        self.cache.forget(key_id)
        self._api_keys.pop(key_id, None)


def _stale(record: KeyRecord) -> bool:
    return record.last_used_at is None or record.last_used_at < time.time() - LAST_USED_EVERY


def record_of(found: ApiKey) -> KeyRecord:
    user: User = found.user
    return KeyRecord(pk=found.pk, key_id=found.id_public, user_id=user.pk, secret_hash=found.secret_hash,
                     scopes=tuple(found.scopes), expires_at=found.expires_at.timestamp() if found.expires_at else None,
                     revoked=found.revoked_at is not None, user_active=user.is_active,
                     last_used_at=found.last_used_at.timestamp() if found.last_used_at else None)


def redis_location() -> tuple[str, str] | None:
    """(LINKMETER_REDIS_URL, LINKMETER_REDIS_PREFIX) when scaled out, else None."""
    from linkmeter.engine.settings import EngineSettings

    engine = EngineSettings.from_env(os.environ)
    return (engine.redis_url, engine.redis_prefix) if engine.redis_url else None


_verifier: Verifier | None = None
_lock = threading.Lock()


def verifier() -> Verifier:
    global _verifier
    if _verifier is None:
        with _lock:
            if _verifier is None:
                _verifier = Verifier()
    return _verifier


def reset() -> None:
    """Forget this process's verifier (tests that change its settings)."""
    global _verifier
    with _lock:
        if _verifier is not None and _verifier.listener is not None:
            _verifier.listener.stop()
        _verifier = None


def expiry_in(days: float | None) -> datetime | None:
    return datetime.now(UTC) + timedelta(days=days) if days else None

