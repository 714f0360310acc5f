"""`linkmeter serve`: migrate, then run the ASGI server and the embedded runner on one event loop."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import signal
import socket
import sys
from collections.abc import Callable, Generator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import uvicorn

from linkmeter import loops
from linkmeter.emulator.client import EmulatorInfo, EmulatorUnreachable, fetch_info, write_ca
from linkmeter.emulator.knobs import Knobs
from linkmeter.web.accounts.mode import AuthMode
from linkmeter.web.gctune import tune_garbage_collector

if TYPE_CHECKING:
    from linkmeter.web.jobs.celery_dispatch import CeleryDispatcher

log = logging.getLogger(__name__)

EXIT_OK, EXIT_USAGE = 0, 2
DEMO_LATENCY_MS = 40.0  # the built-in emulator answers like a real API: a little slow, never instant
ASGI_APP = "linkmeter.web.config.asgi:application"


class ServeError(RuntimeError):
    """Something the user can fix (a busy port, a bad setting, an unreachable emulator): exit status 2."""


def run_server(*, host: str, port: int, demo: bool = False, emulator: str | None = None) -> int:
    """Serve until SIGINT or SIGTERM; returns the exit status."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "linkmeter.web.config.settings")
    from linkmeter.web.accounts import mode

    mode.set_bind_host(host)
    try:
        auth = mode.current()
    except mode.AuthSettingError as exc:
        print(f"linkmeter serve: {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        sock = _listen(host, port)
    except ServeError as exc:
        print(f"linkmeter serve: {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        import django
        from django.conf import settings
        from django.core.management import call_command
        from django.db import DatabaseError, connections

        django.setup()
        data_dir = Path(settings.DATA_DIR)
        Path(settings.STATIC_ROOT).mkdir(parents=True, exist_ok=True)  # whitenoise warns when it is missing
        print(_banner(sock, demo=demo, emulator=emulator, data_dir=data_dir, auth=auth), flush=True)
        try:
            call_command("migrate", interactive=False, verbosity=0)
            if auth is mode.AuthMode.LOCAL:
                from linkmeter.web.accounts.services import local_owner

                local_owner()  # created on first start
        except DatabaseError as exc:
            raise ServeError(f"the database is not usable: {exc}") from exc
        connections.close_all()  # the runner and the requests open their own
        tune_garbage_collector()
        return loops.run(_serve(sock, demo=demo, emulator=emulator, data_dir=data_dir))
    except ServeError as exc:
        print(f"linkmeter serve: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return EXIT_OK
    finally:
        sock.close()


def proxy_options(trusted: list[str]) -> dict[str, Any]:
    """uvicorn's X-Forwarded-For handling: the client address (for the failed-authentication limit, the access
    log, ``REMOTE_ADDR``) and scheme come from the header only when the direct peer is a trusted proxy. With
    none trusted (the default) the header is ignored: uvicorn's own default would trust it from loopback."""
    if not trusted:
        return {"proxy_headers": False}
    return {"proxy_headers": True, "forwarded_allow_ips": list(trusted)}


def _listen(host: str, port: int) -> socket.socket:
    """Bind now, so a busy port is a clear error before anything starts (and port 0 has a number)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise ServeError(f"port {port} on {host} is already in use; stop whatever uses it or choose "
                             "another with --port") from exc
        raise ServeError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from exc
    return sock


def _banner(sock: socket.socket, *, demo: bool, emulator: str | None, data_dir: Path, auth: AuthMode) -> str:
    from django.conf import settings

    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    if demo:
        mode = "demo mode: every provider is the built-in emulator, no internet needed"
    elif emulator:
        mode = f"every provider points at the emulator at {emulator}"
    else:
        mode = "live mode: providers are asked over the internet (--demo runs offline)"
    database = settings.DATABASES["default"]
    if database["ENGINE"].endswith("sqlite3"):
        store = f"data in {data_dir} (SQLite {database['NAME']})"
    else:
        store = f"data in {database['ENGINE'].rsplit('.', 1)[-1]} from DATABASE_URL ({data_dir} for files)"
    access = ("local mode: one local owner account, no login (loopback only)" if auth is AuthMode.LOCAL
              else "login and API keys required (linkmeter user create / key create)")
    return f"linkmeter is running at http://{shown}:{port}/ - {mode} - {access} - {store}. Ctrl+C stops it."


class _Server(uvicorn.Server):
    """uvicorn without its own signal capture: we stop the server and the runner together."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None]:
        yield


async def _serve(sock: socket.socket, *, demo: bool, emulator: str | None, data_dir: Path) -> int:
    from django.conf import settings

    from linkmeter.assembly import build_engine
    from linkmeter.engine.plan import PlanError
    from linkmeter.engine.settings import SettingsError
    from linkmeter.web import dbcalls, runtime
    from linkmeter.web.jobs.runner import InlineRunner
    from linkmeter.web.links import spamsource

    async with contextlib.AsyncExitStack() as stack:
        info: EmulatorInfo | None = None
        if demo:
            info = await _demo_emulator(stack)
        elif emulator:
            info = await _emulator_info(emulator)
        if info is not None:
            # Not read back (the engine takes the PEM as it is): kept beside the data for other clients, e.g.
            # `curl --cacert DATA_DIR/emulator-ca.pem` through the emulator's DNS.
            write_ca(info, data_dir)
        try:
            engine = build_engine(os.environ, relax_rate_limits=info is not None, emulator=info)
            dispatcher = _celery_dispatcher()
        except (SettingsError, PlanError) as exc:
            raise ServeError(str(exc)) from exc
        stack.push_async_callback(engine.close)
        # Celery mode: the workers run the analyses; this engine only answers for provider health (its
        # breakers are the workers' shared ones in Redis).
        runner = InlineRunner(engine) if dispatcher is None else None
        runtime.install(runtime.Runtime(dispatcher=runner if runner is not None else dispatcher, engine=engine,
                                        spam_jobs=_celery_spam_jobs() if dispatcher is not None else None))
        stack.callback(runtime.uninstall)
        dbcalls.install()  # the API's database reads and writes in threads that keep their connections
        stack.callback(dbcalls.uninstall)
        spamsource.install(daily=dispatcher is None)  # the active spam model; embedded: the daily retrain too
        stack.callback(spamsource.uninstall)
        if dispatcher is not None:
            stack.callback(dispatcher.close)

        server = _Server(uvicorn.Config(ASGI_APP, lifespan="off", log_level="info", timeout_graceful_shutdown=5,
                                        log_config=None, **proxy_options(settings.TRUSTED_PROXIES)))
        with _stop_on_signals(server):
            if runner is None:
                await server.serve(sockets=[sock])
                return EXIT_OK
            runner_task = asyncio.create_task(runner.run(), name="linkmeter-runner")
            server_task = asyncio.create_task(server.serve(sockets=[sock]), name="linkmeter-http")
            await asyncio.wait({runner_task, server_task}, return_when=asyncio.FIRST_COMPLETED)
            if runner_task.done():
                failure = None if runner_task.cancelled() else runner_task.exception()
                log.error("the runner stopped unexpectedly (%r); stopping the server", failure)
            server.should_exit = True
            await asyncio.gather(server_task, return_exceptions=True)
            runner.stop()
            await asyncio.gather(runner_task, return_exceptions=True)
    return EXIT_OK


@contextlib.contextmanager
def _stop_on_signals(server: uvicorn.Server) -> Generator[None]:
    loop = asyncio.get_running_loop()

    def stop() -> None:
        if server.should_exit:
            server.force_exit = True  # a second Ctrl+C: stop without waiting for open connections
        server.should_exit = True

    installed = []
    for signum in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(signum, stop)
            installed.append(signum)
    try:
        yield
    finally:
        for signum in installed:
            loop.remove_signal_handler(signum)


def _celery_spam_jobs() -> Callable[[int], None]:
    from linkmeter.web.jobs.tasks import send_spam_job

    return send_spam_job


def _celery_dispatcher() -> CeleryDispatcher | None:
    """The Celery dispatcher when LINKMETER_BROKER_URL is set, else None (the embedded runner)."""
    if not os.environ.get("LINKMETER_BROKER_URL", "").strip():
        return None
    from linkmeter.web.config.celery import celery_app, celery_settings
    from linkmeter.web.jobs.celery_dispatch import CeleryDispatcher

    settings = celery_settings()
    log.info("Celery mode: analyses go to the workers through %s (queue %s)", _without_password(settings.broker_url),
             settings.queue)
    return CeleryDispatcher(celery_app(), settings)


def _without_password(url: str | None) -> str:
    from urllib.parse import urlsplit

    parts = urlsplit(url or "")
    if parts.password:
        return parts._replace(netloc=parts.netloc.replace(f":{parts.password}@", ":***@")).geturl()
    return url or ""


async def _demo_emulator(stack: contextlib.AsyncExitStack) -> EmulatorInfo:
    from linkmeter.emulator.server import start_emulator

    running = await start_emulator(knobs=Knobs(latency_ms=DEMO_LATENCY_MS, seed=1))
    stack.push_async_callback(running.close)
    return running.info()


async def _emulator_info(url: str) -> EmulatorInfo:
    try:
        return await fetch_info(url)
    except EmulatorUnreachable as exc:
        raise ServeError(str(exc)) from exc
