"""`linkmeter worker`, `beat` and `migrate` as real processes (their usage errors and the migration), and
provider health read from the breakers the workers share in Redis."""

from __future__ import annotations

import os
import secrets
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from linkmeter.engine.state.redis_state import redis_state
from linkmeter.providers.registry import PROVIDER_CLASSES
from linkmeter.web.jobs.health import engine_health
from tests.services import REDIS_URL
from tests.web.conftest import use_engine


def run(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "linkmeter", *args], env=env, capture_output=True, text=True,
                          timeout=120, check=False)


def clean_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LINKMETER_") and k != "DATABASE_URL"}
    return {**env, "LINKMETER_DATA_DIR": str(tmp_path / "data"), **extra}


def test_a_worker_or_beat_without_a_broker_says_what_is_missing(tmp_path: Path) -> None:
    for command in ("worker", "beat"):
        done = run(command, env=clean_env(tmp_path))
        assert done.returncode == 2 and "LINKMETER_BROKER_URL is not set" in done.stderr


def test_a_worker_with_a_broker_but_no_redis_refuses_to_start(tmp_path: Path) -> None:
    done = run("worker", env=clean_env(tmp_path, LINKMETER_BROKER_URL="amqp://guest:guest@127.0.0.1:5672//"))
    assert done.returncode == 2 and "LINKMETER_REDIS_URL" in done.stderr


def test_migrate_creates_the_tables(tmp_path: Path) -> None:
    done = run("migrate", env=clean_env(tmp_path))
    assert done.returncode == 0, done.stderr
    with sqlite3.connect(tmp_path / "data" / "linkmeter.sqlite3") as database:
        tables = {row[0] for row in database.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        columns = {row[1] for row in database.execute("PRAGMA table_info(links_batch)")}
    assert {"links_analysis", "links_batch", "links_providerresult"} <= tables
    assert {"callback_url", "callback_status", "callback_attempts", "callback_last_error",
            "callback_sent_at"} <= columns
    assert run("migrate", env=clean_env(tmp_path)).returncode == 0  # nothing left to do: still fine


@pytest.fixture
def shared_redis(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    prefix = f"linkmeter-test-{secrets.token_hex(4)}:"
    monkeypatch.setenv("LINKMETER_REDIS_URL", REDIS_URL)
    monkeypatch.setenv("LINKMETER_REDIS_PREFIX", prefix)
    use_engine(None)
    yield prefix
    use_engine(None)


async def test_without_an_engine_provider_health_shows_the_breakers_shared_in_redis(shared_redis: str) -> None:
    rdap = next(cls for cls in PROVIDER_CLASSES if cls.name == "rdap")
    state = redis_state(REDIS_URL, prefix=shared_redis)  # a worker's view of the same breakers
    try:
        for _ in range(rdap.policy.breaker_threshold):
            await state.breakers.record("rdap", False, rdap.policy.breaker_threshold)
        _, breakers = await engine_health()
        await state.breakers.record("rdap", True, rdap.policy.breaker_threshold)  # leave nothing behind
    finally:
        await state.aclose()
    assert breakers["rdap"] == "open" and breakers["page"] == "closed"
    assert set(breakers) == {cls.name for cls in PROVIDER_CLASSES}


async def test_provider_health_says_unknown_when_the_shared_redis_does_not_answer(
        shared_redis: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LINKMETER_REDIS_URL", "redis://127.0.0.1:1/0")
    _, breakers = await engine_health()
    assert set(breakers.values()) == {"unknown"}
