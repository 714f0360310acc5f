"""Real services and separate processes for the integration tests: start them with bounded waits, inject
faults (kill -9 a worker, restart RabbitMQ or PostgreSQL), check PostgreSQL directly, and always clean up,
leaving every shared service up even when a test fails."""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import select
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import psycopg

from linkmeter.bench.services import check_redis, conninfo, delete_redis_keys, temporary_database
from linkmeter.emulator.client import EmulatorInfo, environment, write_ca
from linkmeter.providers.registry import PROVIDER_CLASSES
from tests.services import redis_database
from tests.waiting import Message, WaitTimeout, wait_until

POSTGRES_SERVER = os.environ.get("LINKMETER_IT_POSTGRES", "postgres://postgres@127.0.0.1:5432/postgres")
RABBITMQ = ("127.0.0.1", 5672)
START_SECONDS = 60.0
SERVICE_SECONDS = 90.0  # a restarted RabbitMQ or PostgreSQL must answer again within this
FINAL = ("done", "partial", "failed")
NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))
# Short recovery intervals so a lost chunk is found in seconds, not minutes (the defaults suit production).
FAST_RECOVERY = {
    "LINKMETER_URL_DEADLINE": "20",
    "LINKMETER_WATCHDOG_INTERVAL": "2",
    "LINKMETER_WATCHDOG_GRACE": "3",
    "LINKMETER_ORPHAN_INTERVAL": "3",
    "LINKMETER_ORPHAN_AGE": "15",
}


class HarnessError(AssertionError):
    """Something the test needed did not happen in time; the message carries the processes' log tails."""


# -- processes ------------------------------------------------------------------------------------------------


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def kill9(self) -> None:
        """SIGKILL to the process and every process it started (its own process group): no cleanup at all."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.popen.pid, signal.SIGKILL)
        self.popen.wait(10)

    def stop(self, grace: float = 15.0) -> None:
        if self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.popen.wait(grace)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.popen.pid, signal.SIGKILL)  # whatever it left behind
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(10)

    def tail(self, lines: int = 25) -> str:
        try:
            text = self.log.read_text(errors="replace").splitlines()[-lines:]
        except OSError:
            return ""
        return f"--- {self.name} ({'running' if self.alive() else f'exit {self.popen.returncode}'}) ---\n" + \
            "\n".join(text)


@dataclass
class Processes:
    """Every process a test started; ``close()`` stops them all, newest first."""

    workdir: Path
    started: list[Proc] = field(default_factory=list)

    def start(self, name: str, args: list[str], env: dict[str, str], *, stdout_pipe: bool = False) -> Proc:
        log = self.workdir / f"{name}.log"
        with log.open("ab") as sink:
            popen = subprocess.Popen(args, env=env, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE if stdout_pipe else sink, stderr=sink,
                                     start_new_session=True)
        proc = Proc(name, popen, log)
        self.started.append(proc)
        return proc

    def tails(self) -> str:
        return "\n".join(proc.tail() for proc in self.started)

    def close(self) -> None:
        for proc in reversed(self.started):
            proc.stop()


def linkmeter(*args: str) -> list[str]:
    return [sys.executable, "-m", "linkmeter", *args]


def read_line(proc: Proc, timeout: float) -> str:
    """The first line the process prints on stdout (started with ``stdout_pipe``), waiting at most ``timeout``."""
    assert proc.popen.stdout is not None
    ready, _, _ = select.select([proc.popen.stdout], [], [], timeout)
    if not ready:
        raise HarnessError(f"{proc.name} printed nothing within {timeout:g}s\n{proc.tail()}")
    line = proc.popen.stdout.readline().decode()
    if not line:
        raise HarnessError(f"{proc.name} exited before it was ready\n{proc.tail()}")
    return line


# -- the emulator and a provider answering 503 ---------------------------------------------------------------


@dataclass(frozen=True)
class Emulator:
    proc: Proc
    info: EmulatorInfo

    @property
    def url(self) -> str:
        return self.info.url


def start_emulator(processes: Processes, *, latency_ms: float = 10, hang: tuple[str, ...] = (),
                   error_rate: float = 0.0, rate_limits: tuple[str, ...] = ()) -> Emulator:
    """``rate_limits``: ``--rate-limit`` values, e.g. ``("hackernews=20/s",)``."""
    args = ["emulate", "--port", "0", "--https-port", "0", "--dns-port", "0", "--ready-json",
            "--latency-ms", str(latency_ms), "--error-rate", str(error_rate), "--seed", "3"]
    for name in hang:
        args += ["--hang", name]
    for limit in rate_limits:
        args += ["--rate-limit", limit]
    proc = processes.start("emulator", linkmeter(*args), dict(os.environ), stdout_pipe=True)
    return Emulator(proc, EmulatorInfo.from_json(json.loads(read_line(proc, START_SECONDS))))


def emulator_env(emulator: Emulator, workdir: Path) -> dict[str, str]:
    """Every provider and the page fetcher pointed at the emulator, with no rate limits but those a test sets
    (what `--emulator` does; given as variables so a test can still point one provider elsewhere)."""
    env = environment(emulator.info, ca_file=write_ca(emulator.info, workdir))
    env.update({f"LINKMETER_{cls.name.upper()}_RATE": "off" for cls in PROVIDER_CLASSES})
    return env


@contextlib.contextmanager
def failing_api(status: int = 503) -> Iterator[str]:
    """A local HTTP server answering ``status`` to every request; yields its base URL."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = b'{"error": "unavailable"}'
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_POST = do_GET

        def log_message(self, format: str, *args: Any) -> None:
            return None

    with local_http_server(Handler) as base:
        yield base


@contextlib.contextmanager
def local_http_server(handler: type[BaseHTTPRequestHandler]) -> Iterator[str]:
    """``handler`` served on a free local port from a thread; yields the base URL, stops the server after."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


# -- shared services: a database, a vhost, a Redis namespace --------------------------------------------------


def rabbitmqctl(*args: str, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["rabbitmqctl", *args], capture_output=True, text=True, timeout=timeout, check=False)


@contextlib.contextmanager
def rabbitmq_vhost() -> Iterator[str]:
    """A RabbitMQ virtual host of its own (queues, exchanges, nothing shared); yields the broker URL."""
    name = f"linkmeter-it-{secrets.token_hex(4)}"
    made = rabbitmqctl("add_vhost", name)
    if made.returncode != 0:
        raise HarnessError(f"rabbitmqctl add_vhost failed (is RabbitMQ running?): {made.stderr or made.stdout}")
    try:
        rabbitmqctl("set_permissions", "-p", name, "guest", ".*", ".*", ".*")
        yield f"amqp://guest:guest@{RABBITMQ[0]}:{RABBITMQ[1]}/{name}"
    finally:
        ensure_rabbitmq()
        rabbitmqctl("delete_vhost", name)


@dataclass
class Cluster:
    """One test's linkmeter in Celery mode: its database, vhost, Redis namespace, emulator and processes."""

    processes: Processes
    env: dict[str, str]
    database: str
    emulator: Emulator
    base: str = ""

    # -- processes

    def migrate(self) -> None:
        done = subprocess.run(linkmeter("migrate"), env=self.env, capture_output=True, text=True, timeout=120,
                              check=False)
        if done.returncode != 0:
            raise HarnessError(f"linkmeter migrate failed: {done.stderr[-3000:]}")

    def serve(self, ready_path: str = "/api/v1/providers") -> str:
        """Start `linkmeter serve`; ready once ``ready_path`` answers 200 (with LINKMETER_AUTH=required: a
        public path, e.g. /api/v1/openapi.json)."""
        proc = self.processes.start("serve", linkmeter("serve", "--host", "127.0.0.1", "--port", "0"), self.env,
                                    stdout_pipe=True)
        match = re.search(r"http://127\.0\.0\.1:(\d+)/", read_line(proc, START_SECONDS))
        if match is None:
            raise HarnessError(f"linkmeter serve printed no address\n{proc.tail()}")
        self.base = f"http://127.0.0.1:{match.group(1)}"
        wait_for(lambda: self._answers(ready_path), START_SECONDS, "linkmeter serve to answer",
                 self.processes)
        return self.base

    def worker(self, name: str, *, concurrency: int = 4, extra_env: dict[str, str] | None = None) -> Proc:
        """``extra_env``: settings for this worker only (e.g. LINKMETER_METRICS_PORT)."""
        return self.processes.start(name, linkmeter("worker", "--concurrency", str(concurrency), "--loglevel",
                                                    "warning", "--hostname", f"{name}-{secrets.token_hex(3)}@%h"),
                                    {**self.env, **(extra_env or {})})

    def beat(self) -> Proc:
        return self.processes.start("beat", linkmeter("beat", "--loglevel", "warning", "--schedule",
                                                      str(self.processes.workdir / "beat-schedule")), self.env)

    def wait_for_workers(self, count: int) -> None:
        """Until ``count`` workers answer a ping over the broker (so they consume before work arrives)."""
        from celery import Celery

        app = Celery("linkmeter-it", broker=self.env["LINKMETER_BROKER_URL"], set_as_current=False)
        try:
            wait_for(lambda: len(app.control.ping(timeout=1.0) or []) >= count, START_SECONDS,
                     f"{count} workers to answer", self.processes)
        finally:
            app.close()

    # -- the API

    def _answers(self, path: str) -> bool:
        try:
            with NO_PROXY.open(self.base + path, timeout=5) as response:
                return bool(response.status == 200)
        except (OSError, urllib.error.URLError):
            return False

    def submit(self, urls: list[str], **fields: Any) -> dict[str, Any]:
        """POST /api/v1/analyses; returns the 202 body (batch_id, analysis_ids, ...)."""
        request = urllib.request.Request(self.base + "/api/v1/analyses", method="POST",
                                         data=json.dumps({"urls": urls, **fields}).encode(),
                                         headers={"Content-Type": "application/json"})
        with NO_PROXY.open(request, timeout=120) as response:
            body: dict[str, Any] = json.loads(response.read())
            if response.status != 202 or body["invalid"]:
                raise HarnessError(f"submission answered {response.status}: {str(body)[:500]}")
            return body

    def batch(self, batch_id: int) -> dict[str, Any] | None:
        """GET /api/v1/batches/{id}; None while the service cannot answer (e.g. its database restarts)."""
        try:
            with NO_PROXY.open(f"{self.base}/api/v1/batches/{batch_id}", timeout=10) as response:
                body: dict[str, Any] = json.loads(response.read())
                return body
        except (OSError, urllib.error.URLError, ValueError):
            return None

    def wait_until_finished(self, batch_id: int, *, at_least: int | None = None, timeout: float) -> dict[str, Any]:
        """Poll the batch until ``at_least`` of its analyses (default: all) are final and, for all, until it
        is closed (finished_at set); returns its last progress."""
        last: dict[str, Any] = {}

        def done() -> bool:
            nonlocal last
            last = self.batch(batch_id) or last
            if not last:
                return False
            if at_least is not None:
                return int(last["finished"]) >= at_least
            return bool(last["finished"] >= last["total"] and last["finished_at"])

        wait_for(done, timeout, lambda: f"batch {batch_id} to reach {at_least or 'the end'} (last: {last})",
                 self.processes, pause=0.1 if at_least is not None else 0.5)
        return last


@contextlib.contextmanager
def cluster(workdir: Path, *, latency_ms: float = 10, hang: tuple[str, ...] = (),
            rate_limits: tuple[str, ...] = (), extra_env: dict[str, str] | None = None) -> Iterator[Cluster]:
    """A fresh database (migrated), vhost, Redis namespace and emulator, for one test; torn down after it,
    with every shared service left running."""
    processes = Processes(workdir)
    prefix = f"linkmeter-it-{secrets.token_hex(4)}:"
    redis_url = redis_database(secrets.randbelow(15) + 1)
    check_redis(redis_url)  # fail now, not after a batch that cannot close without it
    try:
        with temporary_database(POSTGRES_SERVER, prefix="linkmeter_it") as database, rabbitmq_vhost() as broker:
            emulator = start_emulator(processes, latency_ms=latency_ms, hang=hang, rate_limits=rate_limits)
            env = {k: v for k, v in os.environ.items() if not k.startswith("LINKMETER_") and k != "DATABASE_URL"}
            env.update({
                "DATABASE_URL": database,
                "LINKMETER_BROKER_URL": broker,
                "LINKMETER_REDIS_URL": redis_url,
                "LINKMETER_REDIS_PREFIX": prefix,
                "LINKMETER_DATA_DIR": str(workdir / "data"),
                "LINKMETER_MAX_URLS_PER_REQUEST": "5000",
                "LINKMETER_LOG_LEVEL": "WARNING",
                "LINKMETER_LOG_FORMAT": "text",
                "LINKMETER_AUTH": "local",  # a broker implies keys; these tests are about the workers, on loopback
                "DJANGO_SETTINGS_MODULE": "linkmeter.web.config.settings",
                **emulator_env(emulator, workdir),
                **FAST_RECOVERY,
                **(extra_env or {}),
            })
            running = Cluster(processes, env, database, emulator)
            running.migrate()
            try:
                yield running
            finally:
                processes.close()
    finally:
        processes.close()
        ensure_services()
        delete_redis_keys(redis_url, prefix + "*")


# -- checks straight from PostgreSQL --------------------------------------------------------------------------


def query(database: str, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    with psycopg.connect(conninfo(database), connect_timeout=10) as connection:
        return connection.execute(sql, params).fetchall()


def status_counts(database: str) -> dict[str, int]:
    return {status: n for status, n in query(database, "SELECT status, count(*) FROM links_analysis GROUP BY status")}


def duplicate_results(database: str) -> list[tuple[Any, ...]]:
    return query(database, "SELECT analysis_id, provider, count(*) FROM links_providerresult "
                           "GROUP BY analysis_id, provider HAVING count(*) > 1")


def results_per_analysis(database: str, statuses: tuple[str, ...] = ("done", "partial")) -> dict[int, int]:
    """How many provider results each analysis in these statuses has stored."""
    rows = query(database, "SELECT a.id, count(r.id) FROM links_analysis a LEFT JOIN links_providerresult r "
                           "ON r.analysis_id = a.id WHERE a.status = ANY(%s) GROUP BY a.id", list(statuses))
    return {pk: n for pk, n in rows}


def started_more_than_once(database: str) -> int:
    """Analyses a worker started again (their first run was lost with its worker or its connection)."""
    return int(query(database, "SELECT count(*) FROM links_analysis WHERE attempts > 1")[0][0])


def provider_statuses(database: str, provider: str) -> dict[str, int]:
    rows = query(database, "SELECT status, count(*) FROM links_providerresult WHERE provider = %s GROUP BY status",
                 provider)
    return {status: n for status, n in rows}


# -- faults and keeping the shared services up ----------------------------------------------------------------


def port_open(address: tuple[str, int]) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(address, timeout=1):
        return True
    return False


def postgres_accepts() -> bool:
    try:
        with psycopg.connect(conninfo(POSTGRES_SERVER), connect_timeout=2) as connection:
            connection.execute("SELECT 1")
        return True
    except psycopg.Error:
        return False


def postgres_version() -> str:
    return sorted(os.listdir("/etc/postgresql"))[0]


def restart_rabbitmq(down_seconds: float = 3.0) -> None:
    """Stop the RabbitMQ application (every connection drops), keep it down a moment, start it again."""
    try:
        stopped = rabbitmqctl("stop_app")
        if stopped.returncode != 0:
            raise HarnessError(f"rabbitmqctl stop_app failed: {stopped.stderr or stopped.stdout}")
        time.sleep(down_seconds)
    finally:
        ensure_rabbitmq()


def restart_postgresql() -> None:
    """Restart the PostgreSQL cluster (every connection drops); returns once it accepts connections."""
    try:
        done = subprocess.run(["pg_ctlcluster", "--skip-systemctl-redirect", postgres_version(), "main", "restart"],
                              capture_output=True, text=True, timeout=SERVICE_SECONDS, check=False)
        if done.returncode != 0:
            raise HarnessError(f"pg_ctlcluster restart failed: {done.stderr or done.stdout}")
    finally:
        ensure_postgresql()


def ensure_rabbitmq() -> None:
    """RabbitMQ answers on 5672: start its application, or the whole server, when it does not."""
    if port_open(RABBITMQ):
        return
    rabbitmqctl("start_app", timeout=SERVICE_SECONDS)
    if not _wait(lambda: port_open(RABBITMQ), 30):
        subprocess.run(["rabbitmq-server", "-detached"], capture_output=True, timeout=60, check=False)
    if not _wait(lambda: port_open(RABBITMQ), SERVICE_SECONDS):
        raise HarnessError("RabbitMQ did not come back on port 5672")


def ensure_postgresql() -> None:
    if postgres_accepts():
        return
    subprocess.run(["pg_ctlcluster", "--skip-systemctl-redirect", postgres_version(), "main", "start"],
                   capture_output=True, timeout=SERVICE_SECONDS, check=False)
    if not _wait(postgres_accepts, SERVICE_SECONDS):
        raise HarnessError("PostgreSQL did not come back")


def ensure_services() -> None:
    """Every shared service is up (CI shares them): called after each test whatever happened."""
    try:
        ensure_rabbitmq()
    finally:
        ensure_postgresql()


# -- waiting ------------------------------------------------------------------------------------------------


def _wait(condition: Callable[[], bool], timeout: float, pause: float = 0.5) -> bool:
    """Whether ``condition()`` held within ``timeout`` seconds (a service that may need another push)."""
    try:
        wait_until(condition, timeout, interval=pause)
    except WaitTimeout:
        return False
    return True


def wait_for(condition: Callable[[], bool], timeout: float, what: Message, processes: Processes,
             pause: float = 0.2) -> None:
    """Until ``condition()``; fails with the processes' log tails after ``timeout`` seconds (``what`` may be a
    callable, to describe the state at that moment)."""
    try:
        wait_until(condition, timeout, interval=pause, message=what)
    except WaitTimeout as timed_out:
        raise HarnessError(f"{timed_out}\n{processes.tails()}") from None
