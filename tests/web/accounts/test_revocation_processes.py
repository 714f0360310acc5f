"""Revocation across two real `linkmeter serve` processes sharing one database: with Redis, a key revoked by
a third process (`linkmeter key revoke`) is refused by both within 1 s; without Redis (every message lost),
within the key cache's lifetime (5 s) of when each process last read it."""

from __future__ import annotations

import contextlib
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import redis

from tests.services import REDIS_URL
from tests.waiting import wait_until
from tests.web.test_serve import NO_PROXY, START_TIMEOUT, clean_env, first_line, stop

CACHE_SECONDS = 5.0


def status(base: str, key: str) -> int:
    """The status of an API call with ``key``; 0 while the server does not answer yet."""
    request = urllib.request.Request(base + "/api/v1/providers", headers={"X-API-Key": key})
    try:
        with NO_PROXY.open(request, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)
    except OSError:
        return 0


def linkmeter(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    run = subprocess.run([sys.executable, "-m", "linkmeter", *args], capture_output=True, text=True, env=env,
                         timeout=120, check=False)
    assert run.returncode == 0, run.stderr
    return run


@contextlib.contextmanager
def two_servers(tmp_path: Path, env: dict[str, str]) -> Iterator[list[str]]:
    processes: list[subprocess.Popen[str]] = []
    bases = []
    try:
        for number in range(2):
            log = (tmp_path / f"serve-{number}.log").open("w")
            process = subprocess.Popen([sys.executable, "-m", "linkmeter", "serve", "--host", "127.0.0.1",
                                        "--port", "0"], stdout=subprocess.PIPE, stderr=log, text=True, env=env)
            processes.append(process)
            match = re.search(r"http://127\.0\.0\.1:(\d+)/", first_line(process, START_TIMEOUT))
            assert match
            bases.append(f"http://127.0.0.1:{match.group(1)}")
        for base in bases:
            wait_until(lambda b=base: status(b, "") in (401, 429), START_TIMEOUT, interval=0.1,  # type: ignore[misc]
                       message=lambda: "both servers answering")
        yield bases
    finally:
        for process in processes:
            stop(process)


def setup_key(env: dict[str, str]) -> tuple[str, str]:
    linkmeter(env, "user", "create", "alice", "--no-password")
    full = linkmeter(env, "key", "create", "alice", "--name", "two processes").stdout.strip()
    return full, full[:16]


def test_with_redis_both_processes_refuse_a_revoked_key_within_one_second(tmp_path: Path) -> None:
    prefix = f"linkmeter-test:{uuid.uuid4().hex}:"
    env = {**clean_env(tmp_path / "data"), "LINKMETER_AUTH": "required", "LINKMETER_REDIS_URL": REDIS_URL,
           "LINKMETER_REDIS_PREFIX": prefix, "LINKMETER_LOG_FORMAT": "text"}
    full, key_id = setup_key(env)
    try:
        with two_servers(tmp_path, env) as bases:
            assert [status(base, full) for base in bases] == [200, 200]  # each process now has it cached
            time.sleep(1.0)  # each subscription is up (it is made on the first key check)
            assert [status(base, full) for base in bases] == [200, 200]
            linkmeter(env, "key", "revoke", key_id)
            revoked_at = time.monotonic()
            refused: dict[str, float] = {}
            while len(refused) < 2 and time.monotonic() - revoked_at < CACHE_SECONDS:
                for base in bases:
                    if base not in refused and status(base, full) == 401:
                        refused[base] = time.monotonic() - revoked_at
                time.sleep(0.02)
            assert sorted(refused) == sorted(bases), refused
            assert max(refused.values()) < 1.0, refused
    finally:
        client = redis.Redis.from_url(REDIS_URL)
        for name in client.scan_iter(prefix + "*"):
            client.delete(name)
        client.close()


def test_without_redis_the_cache_lifetime_bounds_a_revocation(tmp_path: Path) -> None:
    env = {**clean_env(tmp_path / "data"), "LINKMETER_AUTH": "required", "LINKMETER_LOG_FORMAT": "text"}
    full, key_id = setup_key(env)
    with two_servers(tmp_path, env) as bases:
        assert [status(base, full) for base in bases] == [200, 200]  # each process now has it cached
        linkmeter(env, "key", "revoke", key_id)  # committed before it exits; nobody is told
        revoked_at = time.monotonic()
        refused: dict[str, float] = {}
        while len(refused) < 2 and time.monotonic() - revoked_at < CACHE_SECONDS + 2:
            for base in bases:
                if base not in refused and status(base, full) == 401:
                    refused[base] = time.monotonic() - revoked_at
            time.sleep(0.05)
        assert sorted(refused) == sorted(bases), refused
        # 0.5 s of slack: the time the answer takes to come back (the refusal itself is within the lifetime)
        assert max(refused.values()) <= CACHE_SECONDS + 0.5, refused
