"""Fixtures for the web tests: the runtime every test runs with; and, for the tests that need the Redis the
workers share, a real Redis (LINKMETER_TEST_REDIS_URL, default 127.0.0.1:6379) under a key prefix of the test's
own, deleted afterwards. Those fail (never skip) when Redis is not reachable: CI starts one."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import redis
from redis.exceptions import RedisError

from linkmeter.engine.cache import CacheEntry
from linkmeter.engine.runner import Engine
from linkmeter.web import runtime
from linkmeter.web.jobs.health import forget_counts
from linkmeter.web.runtime import Dispatcher, Runtime
from tests.services import REDIS_URL, UNREACHABLE_REDIS_URL
from tests.web.plans.conftest import account, fresh_plans  # noqa: F401 - every web test: fresh plan caches

__all__ = ["REDIS_URL", "UNREACHABLE_REDIS_URL", "SharedRedis"]  # the web tests import the addresses from here


@pytest.fixture(autouse=True)
def web_runtime() -> Iterator[Runtime]:
    """Every web test runs with a runtime installed, as `linkmeter serve` installs one at start-up: here the
    database queue and no engine (``use_engine`` and ``runtime.install`` put another in its place)."""
    installed = runtime.install(Runtime(spam_jobs=run_spam_job))
    yield installed
    runtime.uninstall()


def run_spam_job(job_id: int) -> None:
    """Spam jobs (training, rescoring) run in-line in the tests, where a background thread would outlive the test's
    database."""
    from linkmeter.web.links.services import spam_learning

    spam_learning.job_run(job_id)


def use_engine(engine: Engine | None, **options: Any) -> Runtime:
    """Install a runtime running ``engine`` (None: no engine), as `linkmeter serve` does; ``options``: the
    other Runtime arguments (dispatcher, clock)."""
    return runtime.install(Runtime(engine=engine, **options))


def use_dispatcher(dispatcher: Dispatcher | None) -> Runtime:
    """Install a runtime handing submissions to ``dispatcher`` (None: the database queue), with no engine."""
    return runtime.install(Runtime(dispatcher=dispatcher))


@dataclass(frozen=True, slots=True)
class SharedRedis:
    url: str
    prefix: str

    async def fill(self, provider: str, count: int, *, ttl: float = 600.0) -> None:
        """Caches ``count`` results of ``provider`` as a worker's engine would (through RedisCache)."""
        from linkmeter.engine.state.cache import RedisCache
        from linkmeter.engine.state.link import RedisLink

        link = RedisLink.from_url(self.url, prefix=self.prefix, timeout=2.0)
        try:
            cache = RedisCache(link, near_bytes=0)
            for number in range(count):
                await cache.set(f"{provider}:key-{number}", CacheEntry({"n": number}, None, 0.0), ttl)
            assert not link.down, "Redis failed while filling the cache"
        finally:
            await link.aclose()


@pytest.fixture
def worker_redis(monkeypatch: pytest.MonkeyPatch) -> Iterator[SharedRedis]:
    """The environment of a web process in Celery mode: LINKMETER_REDIS_URL and a LINKMETER_REDIS_PREFIX of
    this test's own (its keys are deleted afterwards)."""
    admin = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2, socket_timeout=2)
    try:
        admin.ping()
    except (RedisError, OSError) as exc:
        admin.close()
        pytest.fail(f"Redis at {REDIS_URL} is not reachable ({exc!r}); these tests need a running Redis")
    prefix = f"linkmeter-test:{uuid.uuid4().hex}:"
    monkeypatch.setenv("LINKMETER_REDIS_URL", REDIS_URL)
    monkeypatch.setenv("LINKMETER_REDIS_PREFIX", prefix)
    forget_counts()
    try:
        yield SharedRedis(REDIS_URL, prefix)
    finally:
        forget_counts()
        keys = list(admin.scan_iter(match=prefix + "*"))
        if keys:
            admin.delete(*keys)
        admin.close()
