"""`linkmeter worker --processes 2` with the real services (RabbitMQ, PostgreSQL, Redis): one command, two
Celery nodes (NAME-1, NAME-2, each with its own metrics page), a worker killed with -9 comes back under the
same name, and SIGTERM to the command alone stops both cleanly (exit status 0, no node left answering)."""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import socket
import urllib.error
from pathlib import Path
from typing import Any

import pytest
from celery import Celery

from tests.integration.harness import NO_PROXY, START_SECONDS, cluster, linkmeter, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


def free_port_pair() -> int:
    """A port P with P and P + 1 free (for the two workers' metrics pages)."""
    for _ in range(50):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = int(probe.getsockname()[1])
        if port < 65535:
            with contextlib.suppress(OSError), socket.socket() as first, socket.socket() as second:
                first.bind(("127.0.0.1", port))
                second.bind(("127.0.0.1", port + 1))
                return port
    raise AssertionError("no two free consecutive ports")


def metrics_answer(port: int) -> bool:
    try:
        with NO_PROXY.open(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            return bool(response.status == 200)
    except (OSError, urllib.error.URLError):
        return False


def pids(app: Celery, prefix: str) -> dict[str, int]:
    """Node name -> pid of the workers named ``prefix``... that answer."""
    stats: dict[str, Any] = app.control.inspect(timeout=2.0).stats() or {}
    return {node: int(info["pid"]) for node, info in stats.items() if node.startswith(prefix)}


def test_processes_2_runs_two_celery_nodes_restarts_a_killed_one_and_stops_on_sigterm(tmp_path: Path) -> None:
    with cluster(tmp_path) as running:
        name = f"multi-{secrets.token_hex(3)}"
        port = free_port_pair()
        workers = running.processes.start(
            "workers", linkmeter("worker", "--processes", "2", "--concurrency", "2", "--loglevel", "warning",
                                 "--hostname", f"{name}@%h"),
            {**running.env, "LINKMETER_METRICS_PORT": str(port)})
        app = Celery("linkmeter-it", broker=running.env["LINKMETER_BROKER_URL"], set_as_current=False)
        try:
            def nodes() -> set[str]:
                return {node for reply in app.control.ping(timeout=1.0) or [] for node in reply
                        if node.startswith(name)}

            wait_for(lambda: len(nodes()) == 2, START_SECONDS, "2 nodes to answer a ping", running.processes)
            assert {node.split("@")[0] for node in nodes()} == {f"{name}-1", f"{name}-2"}
            assert metrics_answer(port) and metrics_answer(port + 1)  # one metrics page per worker
            first = pids(app, name)
            assert len(first) == 2 and workers.pid not in first.values()

            killed = next(node for node in first if node.startswith(f"{name}-1@"))
            os.kill(first[killed], signal.SIGKILL)  # the worker alone: its supervisor restarts it

            def back() -> bool:
                now = pids(app, name)
                return killed in now and now[killed] != first[killed] and len(now) == 2

            wait_for(back, START_SECONDS + 30, f"{killed} to come back", running.processes)
            assert workers.alive()
            later = pids(app, name)
            other = next(node for node in first if node != killed)
            assert later[other] == first[other]  # the other one was not touched

            os.kill(workers.pid, signal.SIGTERM)  # the supervisor only: it passes it on
            assert workers.popen.wait(120) == 0, running.processes.tails()
            assert nodes() == set()
            for pid in later.values():
                with pytest.raises(ProcessLookupError):
                    os.kill(pid, 0)
        finally:
            app.close()
