"""Plans across OS processes: two processes racing for the last URLs of a quota never overspend (SQLite
embedded; PostgreSQL with Redis scaled out), nor hold more URLs in flight than the plan allows, and the usage
survives a restart and a Redis flush; two
processes sharing Redis together never pass more requests than the plan's rate limit."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from linkmeter.bench.services import delete_redis_keys, temporary_database
from tests.integration.harness import POSTGRES_SERVER
from tests.processes import clean_environ
from tests.services import REDIS_URL

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]

ROOT = Path(__file__).resolve().parents[2]
LIMIT = 100


def racer(mode: str, env: dict[str, str], tag: str = "") -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "tests.integration.plans_racer", mode, tag], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def answer(process: subprocess.Popen[str]) -> Any:
    out, err = process.communicate(timeout=120)
    assert process.returncode == 0, err[-3000:]
    return json.loads(out.strip().splitlines()[-1])


def race(env: dict[str, str], mode: str) -> list[Any]:
    env = {**env, "RACE_LIMIT": str(LIMIT), "RACE_START": str(time.time() + 4.0)}  # both start at once
    processes = [racer(mode, env, tag) for tag in ("a", "b")]
    return [answer(p) for p in processes]


@pytest.fixture
def sqlite_env(tmp_path: Path) -> dict[str, str]:
    return {**clean_environ(), "LINKMETER_DATA_DIR": str(tmp_path), "LINKMETER_LOG_LEVEL": "WARNING"}


@pytest.fixture
def scaled_env(tmp_path: Path) -> Iterator[dict[str, str]]:
    prefix = f"linkmeter-test:{uuid.uuid4().hex}:"
    with temporary_database(POSTGRES_SERVER, prefix="linkmeter_plans") as url:
        yield {**clean_environ(), "LINKMETER_DATA_DIR": str(tmp_path), "DATABASE_URL": url,
               "LINKMETER_REDIS_URL": REDIS_URL, "LINKMETER_REDIS_PREFIX": prefix, "LINKMETER_LOG_LEVEL": "WARNING"}
    delete_redis_keys(REDIS_URL, f"{prefix}*")


def check_quota_race(env: dict[str, str]) -> None:
    answer(racer("setup", {**env, "RACE_LIMIT": str(LIMIT)}))
    results = race(env, "quota")
    accepted = sum(r["accepted"] for r in results)
    assert all(r["refused"] > 0 for r in results), results  # both ran into the quota: a real race
    usage = answer(racer("usage", env))  # a new process: what the database kept
    day = {q["period"]: q for q in usage["quotas"]}["day"]
    assert day["used"] == accepted <= LIMIT, (results, day)
    assert accepted >= LIMIT - 2  # only a batch larger than what was left was refused at the end
    assert sum(k["urls"] for k in usage["keys"]["day"]) == accepted == usage["history"][-1]["urls"]


def test_two_processes_never_overspend_a_quota_on_sqlite(sqlite_env: dict[str, str]) -> None:
    check_quota_race(sqlite_env)


def test_two_processes_never_overspend_a_quota_on_postgresql_and_usage_survives_a_redis_flush(
        scaled_env: dict[str, str]) -> None:
    check_quota_race(scaled_env)
    before = answer(racer("usage", scaled_env))
    delete_redis_keys(REDIS_URL, f"{scaled_env['LINKMETER_REDIS_PREFIX']}*")
    assert answer(racer("usage", scaled_env))["quotas"] == before["quotas"]


def check_in_flight_race(env: dict[str, str]) -> None:
    env = {**env, "RACE_IN_FLIGHT": str(LIMIT)}
    answer(racer("setup", env))
    results = race(env, "flight")
    accepted = sum(r["accepted"] for r in results)
    assert all(r["refused"] == ["too_many_in_flight"] * 3 for r in results), results  # both reached the limit
    assert answer(racer("queued", env))["queued"] == accepted <= LIMIT, results
    assert accepted >= LIMIT - 2  # only a batch larger than what was left was refused


def test_two_processes_never_hold_more_urls_in_flight_than_the_plan_on_sqlite(sqlite_env: dict[str, str]) -> None:
    check_in_flight_race(sqlite_env)


def test_two_processes_never_hold_more_urls_in_flight_than_the_plan_on_postgresql(
        scaled_env: dict[str, str]) -> None:
    check_in_flight_race(scaled_env)


def test_two_processes_sharing_redis_pass_no_more_requests_than_the_rate_limit(
        scaled_env: dict[str, str]) -> None:
    results = race(scaled_env, "rate")  # no database needed: the limiter alone
    assert sum(r["allowed"] for r in results) == LIMIT, results  # per minute: over 2 s exactly the limit
    keys = redis.Redis.from_url(REDIS_URL).keys(f"{scaled_env['LINKMETER_REDIS_PREFIX']}api*")
    assert keys  # the windows were in Redis, not in each process
