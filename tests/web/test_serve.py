"""`linkmeter serve` as a real process: it says where it runs, serves the UI and the API with the runner
behind it, stops cleanly on SIGTERM, and refuses a busy port with exit status 2."""

from __future__ import annotations

import json
import os
import re
import select
import signal
import socket
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.waiting import wait_until

START_TIMEOUT = 60.0
NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


@dataclass
class Served:
    process: subprocess.Popen[str]
    banner: str
    base: str
    log: Path

    def get(self, path: str) -> tuple[int, bytes]:
        with NO_PROXY.open(self.base + path, timeout=30) as response:
            return response.status, response.read()

    def post_json(self, path: str, body: Any) -> tuple[int, Any]:
        request = urllib.request.Request(self.base + path, data=json.dumps(body).encode(), method="POST",
                                         headers={"Content-Type": "application/json"})
        with NO_PROXY.open(request, timeout=60) as response:
            return response.status, json.loads(response.read())


def serve_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "linkmeter", "serve", "--host", "127.0.0.1", *args]


def clean_env(data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LINKMETER_") and k != "DATABASE_URL"}
    return {**env, "LINKMETER_DATA_DIR": str(data_dir), "DJANGO_SETTINGS_MODULE": "linkmeter.web.config.settings"}


def first_line(process: subprocess.Popen[str], timeout: float) -> str:
    assert process.stdout is not None
    ready, _, _ = select.select([process.stdout], [], [], timeout)
    assert ready, f"no output within {timeout}s"
    return process.stdout.readline()


def stop(process: subprocess.Popen[str]) -> int:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            return process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            raise
    return process.returncode


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    log = tmp_path / "serve.log"
    with log.open("w") as stderr:
        process = subprocess.Popen(serve_command("--demo", "--port", "0"), stdout=subprocess.PIPE, stderr=stderr,
                                   text=True, env=clean_env(tmp_path / "data"))
    try:
        banner = first_line(process, START_TIMEOUT)
        match = re.search(r"http://127\.0\.0\.1:(\d+)/", banner)
        assert match, f"no URL in the first line {banner!r}; log: {log.read_text()}"
        base = f"http://127.0.0.1:{match.group(1)}"

        def answers() -> bool:
            try:
                with NO_PROXY.open(base + "/admin/login/", timeout=5):
                    return True
            except OSError:
                assert process.poll() is None, f"serve exited: {log.read_text()}"
                return False

        # migrations run after the banner: wait until HTTP answers
        wait_until(answers, START_TIMEOUT, interval=0.1, message=lambda: f"an HTTP answer; log: {log.read_text()}")
        yield Served(process, banner, base, log)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_serve_demo_answers_and_runs_a_submission_to_the_end(served: Served, tmp_path: Path) -> None:
    assert "demo mode" in served.banner and str(tmp_path / "data") in served.banner
    assert served.get("/")[0] == 200
    assert served.get("/admin/login/")[0] == 200
    urls = ["https://news.example.org/a/1", "https://techblog.example/blog/async-python-in-practice", "nope"]
    status, body = served.post_json("/api/v1/analyses?wait=30", {"urls": urls})
    assert status == 200, body
    assert [item["index"] for item in body["invalid"]] == [2]
    assert {result["status"] for result in body["results"]} <= {"done", "partial"}
    assert all(result["signals"].get("page.status") == 200 for result in body["results"])
    # The providers page reads the breaker states of the engine this process runs, not "unknown".
    rows = json.loads(served.get("/api/v1/providers")[1])["providers"]
    assert rows and {row["breaker"] for row in rows} <= {"closed", "open", "half_open"}
    assert stop(served.process) == 0
    assert (tmp_path / "data" / "linkmeter.sqlite3").exists()
    assert (tmp_path / "data" / "emulator-ca.pem").exists()


def test_serve_refuses_a_busy_port_with_exit_status_2(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        run = subprocess.run(serve_command("--port", str(port)), capture_output=True, text=True, timeout=60,
                             env=clean_env(tmp_path / "data"))
    assert run.returncode == 2
    assert f"port {port} on 127.0.0.1 is already in use" in run.stderr


def test_serve_refuses_demo_and_emulator_together(tmp_path: Path) -> None:
    run = subprocess.run(serve_command("--demo", "--emulator", "http://127.0.0.1:1"), capture_output=True,
                         text=True, timeout=60, env=clean_env(tmp_path / "data"))
    assert run.returncode == 2 and "choose one of --demo and --emulator" in run.stderr


def test_serve_refuses_an_emulator_that_does_not_answer(tmp_path: Path) -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]  # bound, never listening: connections are refused
        run = subprocess.run(serve_command("--port", "0", "--emulator", f"http://127.0.0.1:{port}"),
                             capture_output=True, text=True, timeout=60, env=clean_env(tmp_path / "data"))
    assert run.returncode == 2
    assert f"no linkmeter emulator answers at http://127.0.0.1:{port}" in run.stderr


def test_x_forwarded_for_is_read_only_from_trusted_proxies() -> None:
    from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

    from linkmeter.web.serve import proxy_options

    assert proxy_options([]) == {"proxy_headers": False}  # uvicorn's own default trusts loopback
    options = proxy_options(["10.0.0.0/8"])
    assert options["proxy_headers"] is True
    trusted = ProxyHeadersMiddleware(lambda *_: None, options["forwarded_allow_ips"]).trusted_hosts  # type: ignore[arg-type]
    assert "10.1.2.3" in trusted and "127.0.0.1" not in trusted
    assert trusted.get_trusted_client_address("203.0.113.5, 198.51.100.2, 10.0.0.7")[0] == "198.51.100.2"
