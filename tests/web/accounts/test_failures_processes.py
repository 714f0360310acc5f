"""Failed authentication across real `linkmeter serve` processes: two processes sharing Redis together allow
an address no more failures than one would; the client's address comes from X-Forwarded-For only when the
peer is one of LINKMETER_TRUSTED_PROXIES, and with none trusted (the default) the header changes nothing."""

from __future__ import annotations

import contextlib
import re
import subprocess
import sys
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

from linkmeter.bench.services import delete_redis_keys
from tests.services import REDIS_URL
from tests.waiting import wait_until
from tests.web.test_serve import NO_PROXY, START_TIMEOUT, clean_env, first_line, stop

LIMIT = 4
BAD_KEY = "lmk_notakey"


def answers(base: str) -> bool:
    """The public API description answers: the server is up (asking costs no failed authentication)."""
    try:
        with NO_PROXY.open(base + "/api/v1/openapi.json", timeout=10) as response:
            return int(response.status) == 200
    except OSError:
        return False


@contextlib.contextmanager
def servers(tmp_path: Path, env: dict[str, str], count: int) -> Iterator[list[str]]:
    processes: list[subprocess.Popen[str]] = []
    bases = []
    try:
        for number in range(count):
            log = (tmp_path / f"serve-{number}.log").open("w")
            process = subprocess.Popen([sys.executable, "-m", "linkmeter", "serve", "--host", "127.0.0.1",
                                        "--port", "0"], stdout=subprocess.PIPE, stderr=log, text=True, env=env)
            processes.append(process)
            match = re.search(r"http://127\.0\.0\.1:(\d+)/", first_line(process, START_TIMEOUT))
            assert match
            bases.append(f"http://127.0.0.1:{match.group(1)}")
        for base in bases:
            wait_until(lambda b=base: answers(b), START_TIMEOUT, interval=0.1,  # type: ignore[misc]
                       message=lambda: "the servers answering")
        yield bases
    finally:
        for process in processes:
            stop(process)


def status(base: str, forwarded_for: str | None = None) -> int:
    headers = {"X-API-Key": BAD_KEY}
    if forwarded_for is not None:
        headers["X-Forwarded-For"] = forwarded_for
    request = urllib.request.Request(base + "/api/v1/providers", headers=headers)
    try:
        with NO_PROXY.open(request, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


def test_two_processes_share_the_failures_of_a_client_behind_a_trusted_proxy(tmp_path: Path) -> None:
    prefix = f"linkmeter-test:{uuid.uuid4().hex}:"
    env = {**clean_env(tmp_path / "data"), "LINKMETER_AUTH": "required", "LINKMETER_REDIS_URL": REDIS_URL,
           "LINKMETER_REDIS_PREFIX": prefix, "LINKMETER_LOG_FORMAT": "text",
           "LINKMETER_AUTH_FAILURES_PER_MINUTE": str(LIMIT), "LINKMETER_TRUSTED_PROXIES": "127.0.0.0/8"}
    try:
        with servers(tmp_path, env, 2) as bases:
            client = "203.0.113.7"
            seen = [status(bases[i % 2], f"198.51.100.1, {client}") for i in range(LIMIT)]  # a spoofed hop first
            assert seen == [401] * LIMIT
            assert [status(base, client) for base in bases] == [429, 429]  # blocked in both processes
            assert [status(base, "203.0.113.8") for base in bases] == [401, 401]  # another client is not
    finally:
        delete_redis_keys(REDIS_URL, f"{prefix}*")


def test_with_no_trusted_proxy_x_forwarded_for_is_ignored(tmp_path: Path) -> None:
    env = {**clean_env(tmp_path / "data"), "LINKMETER_AUTH": "required", "LINKMETER_LOG_FORMAT": "text",
           "LINKMETER_AUTH_FAILURES_PER_MINUTE": str(LIMIT)}
    with servers(tmp_path, env, 1) as [base]:
        seen = [status(base, f"203.0.113.{i}") for i in range(LIMIT)]  # a new "client" every time
        assert seen == [401] * LIMIT
        assert status(base, "203.0.113.200") == 429  # all of them were the peer, 127.0.0.1
