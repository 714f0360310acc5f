"""The emulator process: provider APIs and the synthetic web on HTTP and HTTPS listeners, plus its DNS server."""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import ipaddress
import signal
import socket
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Protocol, cast

from aiohttp import hdrs, web

from linkmeter.emulator.client import EmulatorInfo
from linkmeter.emulator.knobs import Faults, Knobs
from linkmeter.emulator.parts import ApiMount, Part, demo_keys, discover_apis, web_answers
from linkmeter.emulator.stats import RequestStats
from linkmeter.emulator.tls import EmulatorTLS
from linkmeter.emulator.web import PROVIDER as WEB_PROVIDER
from linkmeter.emulator.web import SyntheticWeb
from linkmeter.emulator.world import World

DNS_MODULE = "linkmeter.emulator.dnsserver"
# aiohttp waits this long for in-flight handlers at shutdown; ours end as soon as close() is called.
SHUTDOWN_TIMEOUT = 2.0
# Connections waiting to be accepted (the kernel caps it at net.core.somaxconn). A batch's start opens hundreds
# at once; with aiohttp's 128 a busy emulator overflowed it, the kernel dropped SYNs, and their requests came a
# second late (the SYN's retransmission), as if sent a second after they were.
LISTEN_BACKLOG = 4096

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class DnsServer(Protocol):
    port: int

    async def close(self) -> None: ...


def is_api_host(host_header: str) -> bool:
    """An IP literal or ``localhost`` (port ignored) reaches the APIs; any other name the synthetic web."""
    host = host_header.strip().lower()
    if host.startswith("["):
        return True
    if host.count(":") == 1:
        host = host.partition(":")[0]
    host = host.rstrip(".")
    if host in ("localhost", ""):
        return True
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


class _Dispatch:
    """Root middleware: routes by Host, then applies the knobs of the provider being asked, answering a
    fault in that provider's shape (its part's hooks)."""

    def __init__(self, world: World, knobs: Knobs, mounts: list[ApiMount], closing: asyncio.Event) -> None:
        self.web = SyntheticWeb(world)
        self.web_answers = web_answers()
        self.faults = Faults(knobs)
        self.mounts = {mount.name: mount for mount in mounts}
        self.closing = closing
        # Counted on arrival, before any knob: tests prove coalescing by what reaches the upstream.
        self.request_counts: Counter[str] = Counter()  # by provider mount name ("page": the web)
        self.path_counts: Counter[str] = Counter()  # API requests by path, e.g. "/rdap/dns.json"
        # Requests, 429s and requests before a Retry-After passed, per provider: GET /_emulator/stats.
        self.stats = RequestStats(limits=knobs.rate_limits, always=[WEB_PROVIDER, *self.mounts])

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        # Not request.host: without a Host header aiohttp falls back to this machine's (blocking) FQDN.
        if not is_api_host(request.headers.get(hdrs.HOST, "")):
            self.request_counts[WEB_PROVIDER] += 1
            return await self._with_knobs(self.web_answers, request, self.web.handle)
        mount = self.mounts.get(request.path.split("/", 2)[1])
        if mount is None:
            return await handler(request)
        self.request_counts[mount.name] += 1
        self.path_counts[request.path] += 1
        return await self._with_knobs(mount, request, handler)

    async def _with_knobs(self, part: Part, request: web.Request, handler: Handler) -> web.StreamResponse:
        provider = part.name
        loop = asyncio.get_running_loop()
        now = loop.time()
        self.stats.arrived(provider, now)
        verdict = self.faults.decide(provider, now)
        if verdict.hang:
            await self.closing.wait()
            return web.Response(status=503, text="emulator shutting down\n", headers={"Connection": "close"})
        if verdict.delay > 0:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(verdict.delay):
                    await self.closing.wait()
        if verdict.retry_after is not None:
            self.stats.rate_limited(provider, loop.time(), verdict.retry_after)  # sent now, after the delay
            return part.rate_limited_response(verdict.retry_after)
        if verdict.error_status is not None:
            return part.error_response(verdict.error_status)
        return await handler(request)


class RunningEmulator:
    """A started emulator; ``close()`` releases hanging requests, stops the listeners and the DNS server."""

    def __init__(self, *, host: str, http_port: int, https_port: int, dns_port: int, ca_pem: str, seed: int,
                 providers: list[str], runner: web.AppRunner, dns: DnsServer | None,
                 closing: asyncio.Event, request_counts: Counter[str] | None = None,
                 path_counts: Counter[str] | None = None, stats: RequestStats | None = None) -> None:
        self.host = host
        self.http_port = http_port
        self.https_port = https_port
        self.dns_port = dns_port
        self.ca_pem = ca_pem
        self.seed = seed
        self.providers = providers
        self.url = f"http://{_url_host(host)}:{http_port}"
        # HTTP requests received so far, by provider mount name and by API path (live counters).
        self.request_counts: Counter[str] = request_counts if request_counts is not None else Counter()
        self.path_counts: Counter[str] = path_counts if path_counts is not None else Counter()
        # Per provider: requests, 429s, early requests, busiest second (the GET /_emulator/stats document).
        self.stats = stats if stats is not None else RequestStats()
        self._runner = runner
        self._dns = dns
        self._closing = closing
        self._closed = False

    def info(self) -> EmulatorInfo:
        """What ``GET /_emulator/info`` describes (``to_json()``: the document itself)."""
        return EmulatorInfo(url=self.url, http_port=self.http_port, https_port=self.https_port,
                            dns=(self.host, self.dns_port) if self._dns is not None else None,
                            ca_pem=self.ca_pem, seed=self.seed, providers=tuple(self.providers),
                            keys=demo_keys())

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._closing.set()
        try:
            if self._dns is not None:
                await self._dns.close()
        finally:
            await self._runner.cleanup()


async def start_emulator(*, host: str = "127.0.0.1", port: int = 0, https_port: int = 0, dns_port: int = 0,
                         knobs: Knobs | None = None) -> RunningEmulator:
    """Start the emulator; a port of 0 picks a free one (read the chosen ports from the result)."""
    knobs = knobs or Knobs()
    host = "127.0.0.1" if host == "localhost" else host
    world = World(knobs.seed)
    tls = EmulatorTLS()
    mounts = discover_apis()
    closing = asyncio.Event()
    dispatch = _Dispatch(world, knobs, mounts, closing)

    app = web.Application(middlewares=[dispatch.middleware])
    for mount in mounts:
        app.add_subapp(f"/{mount.name}", mount.create_app(world, knobs))
    holder: list[RunningEmulator] = []

    async def info(_request: web.Request) -> web.Response:
        return web.json_response(holder[0].info().to_json())

    async def index(_request: web.Request) -> web.Response:
        return web.json_response({"emulator": "linkmeter", "info": "/_emulator/info", "stats": "/_emulator/stats",
                                  "providers": [f"/{mount.name}" for mount in mounts]})

    async def stats(request: web.Request) -> web.Response:
        text = request.query.get("grace")
        try:
            grace = float(text) if text is not None else None
        except ValueError:
            grace = -1.0
        if grace is not None and not 0 <= grace < float("inf"):
            return web.json_response({"error": f"grace must be a number of seconds >= 0, not {text!r}"},
                                     status=400)
        return web.json_response(dispatch.stats.snapshot(grace))

    async def reset_stats(_request: web.Request) -> web.Response:
        dispatch.stats.reset()
        return web.json_response(dispatch.stats.snapshot())

    app.router.add_get("/_emulator/info", info)
    app.router.add_get("/_emulator/stats", stats)
    app.router.add_post("/_emulator/stats/reset", reset_stats)
    app.router.add_get("/", index)

    plain = _listen(host, port)
    secure = _listen(host, https_port)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=SHUTDOWN_TIMEOUT)
    dns: DnsServer | None = None
    try:
        await runner.setup()
        await web.SockSite(runner, plain, backlog=LISTEN_BACKLOG).start()
        await web.SockSite(runner, secure, ssl_context=tls.server_context, backlog=LISTEN_BACKLOG).start()
        dns = await _start_dns(world, host, dns_port, knobs)
    except BaseException:
        await runner.cleanup()
        plain.close()
        secure.close()
        raise
    emulator = RunningEmulator(
        host=host, http_port=plain.getsockname()[1], https_port=secure.getsockname()[1],
        dns_port=dns.port if dns is not None else 0, ca_pem=tls.ca_pem, seed=knobs.seed,
        providers=[mount.name for mount in mounts], runner=runner, dns=dns, closing=closing,
        request_counts=dispatch.request_counts, path_counts=dispatch.path_counts, stats=dispatch.stats,
    )
    holder.append(emulator)
    return emulator


async def serve_forever(*, host: str = "127.0.0.1", port: int = 0, https_port: int = 0, dns_port: int = 0,
                        knobs: Knobs | None = None,
                        ready: Callable[[RunningEmulator], None] | None = None) -> None:
    """Run until cancelled, SIGINT or SIGTERM, then close cleanly. ``ready`` is called once listening."""
    emulator = await start_emulator(host=host, port=port, https_port=https_port, dns_port=dns_port,
                                    knobs=knobs)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    installed: list[signal.Signals] = []
    try:
        for signum in (signal.SIGINT, signal.SIGTERM):
            try:
                loop.add_signal_handler(signum, stop.set)
            except (NotImplementedError, RuntimeError, ValueError):
                continue  # not the main thread, or no signal support: cancellation still stops us
            installed.append(signum)
        if ready is not None:
            ready(emulator)
        await stop.wait()
    finally:
        for signum in installed:
            loop.remove_signal_handler(signum)
        await emulator.close()


async def _start_dns(world: World, host: str, port: int, knobs: Knobs) -> DnsServer | None:
    try:
        module = importlib.import_module(DNS_MODULE)
    except ModuleNotFoundError as exc:
        if exc.name != DNS_MODULE:
            raise
        return None  # the DNS server is written separately; the HTTP side works without it
    start = cast(Callable[..., Awaitable[DnsServer]], module.start_dns_server)
    answer = host if _is_ipv4(host) else "127.0.0.1"
    return await start(world, host=host, port=port, answer_address=answer, knobs=knobs)


def _listen(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


def _is_ipv4(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).version == 4
    except ValueError:
        return False


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host
