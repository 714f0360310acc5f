"""The emulator server: host routing, API discovery, knobs, TLS per SNI name, info, lifecycle."""

from __future__ import annotations

import asyncio
import json
import random
import ssl
import statistics
import sys
import textwrap
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import aiohttp
import pytest

from linkmeter.emulator import apis as apis_package
from linkmeter.emulator.client import EmulatorInfo, environment
from linkmeter.emulator.knobs import Faults, Knobs, TokenBucket
from linkmeter.emulator.parts import discover_apis
from linkmeter.emulator.server import (
    RunningEmulator,
    is_api_host,
    serve_forever,
    start_emulator,
)
from tests.conftest import AddModules, MakeEmulator, web_session_for

FAKE_API = textwrap.dedent('''
    """A fake provider API used by the server tests."""
    from aiohttp import web

    from linkmeter.emulator.apis import WORLD

    NAME = "fakeapi"
    routes = web.RouteTableDef()

    @routes.get("/echo")
    async def echo(request):
        world = request.app[WORLD]
        return web.json_response({"seed": world.seed, "path": request.path, "host": request.host})

    def rate_limited_response(retry_after):
        return web.json_response({"fake": "slow down"}, status=429,
                                 headers={"Retry-After": str(int(retry_after))})
''')
PLAIN_API = textwrap.dedent('''
    """A fake provider API without its own 429 shape."""
    from aiohttp import web

    NAME = "plainapi"
    routes = web.RouteTableDef()

    @routes.get("/hello")
    async def hello(request):
        return web.json_response({"hello": True})
''')
NOT_AN_API = '"""A helper module with no NAME: not mounted."""\nVALUE = 1\n'


@pytest.fixture
def fake_apis(add_modules: AddModules) -> None:
    """Adds fakeapi.py, plainapi.py and helper.py to linkmeter.emulator.apis, as a new provider file would."""
    add_modules(apis_package, {"fakeapi": FAKE_API, "plainapi": PLAIN_API, "helper": NOT_AN_API})


async def get(url: str, **kwargs: Any) -> tuple[int, dict[str, str], bytes]:
    async with aiohttp.ClientSession() as session, session.get(url, allow_redirects=False, **kwargs) as resp:
        return resp.status, dict(resp.headers), await resp.read()


# -- routing by Host -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "api"),
    [
        ("127.0.0.1", True),
        ("127.0.0.1:8080", True),
        ("localhost:8080", True),
        ("LOCALHOST", True),
        ("[::1]:8080", True),
        ("::1", True),
        ("news.example.org", False),
        ("news.example.org:8443", False),
        ("localhost.example", False),
        ("127.0.0.1.nip.example", False),
    ],
)
def test_is_api_host(host: str, api: bool) -> None:
    assert is_api_host(host) is api


async def test_info_on_the_api_host_describes_the_emulator(emulator: RunningEmulator) -> None:
    status, _, body = await get(f"{emulator.url}/_emulator/info")
    assert status == 200
    info = json.loads(body)
    assert info == emulator.info().to_json()
    assert EmulatorInfo.from_json(info) == emulator.info()
    assert info["url"] == emulator.url == f"http://127.0.0.1:{emulator.http_port}"
    assert info["http_port"] == emulator.http_port
    assert info["https_port"] == emulator.https_port
    assert info["ca_pem"].startswith("-----BEGIN CERTIFICATE-----")
    assert info["seed"] == 0
    assert info["providers"] == [mount.name for mount in discover_apis()]


async def test_localhost_host_reaches_the_apis(emulator: RunningEmulator) -> None:
    status, _, body = await get(f"{emulator.url}/_emulator/info", headers={"Host": f"localhost:{emulator.http_port}"})
    assert status == 200
    assert b'"ca_pem"' in body


async def test_a_dns_name_host_reaches_the_synthetic_web_not_the_apis(emulator: RunningEmulator) -> None:
    status, headers, body = await get(f"{emulator.url}/_emulator/info", headers={"Host": "news.example.org"})
    assert status == 301
    assert headers["Location"] == "https://news.example.org/_emulator/info"
    assert b"ca_pem" not in body


async def test_a_request_without_host_header_reaches_the_apis(emulator: RunningEmulator) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", emulator.http_port)
    try:
        writer.write(b"GET /_emulator/info HTTP/1.0\r\n\r\n")
        await writer.drain()
        answer = await reader.read()
    finally:
        writer.close()
        await writer.wait_closed()
    assert answer.startswith(b"HTTP/1.0 200") or answer.startswith(b"HTTP/1.1 200")
    assert b'"ca_pem"' in answer


async def test_https_with_a_name_serves_pages_and_with_an_ip_serves_apis(emulator: RunningEmulator) -> None:
    async with web_session_for(emulator) as session:
        async with session.get("https://news.example.org/a/1") as resp:
            assert resp.status == 200
            assert resp.content_type == "text/html"
            assert b"<title>" in await resp.read()
        # The default certificate covers 127.0.0.1, so the APIs are reachable over HTTPS too.
        async with session.get(f"https://127.0.0.1:{emulator.https_port}/_emulator/info") as resp:
            assert resp.status == 200
            assert (await resp.json())["https_port"] == emulator.https_port


async def test_plain_http_page_redirects_to_https_and_the_redirect_is_followed(
    web_session: aiohttp.ClientSession,
) -> None:
    async with web_session.get("http://dailyplanet.example/news/storm-hits-coast?id=4821") as resp:
        assert resp.status == 200
        assert str(resp.url) == "https://dailyplanet.example/news/storm-hits-coast?id=4821"
        assert [r.status for r in resp.history] == [301]


# -- TLS: a certificate per SNI name -------------------------------------------------------------------


async def test_tls_verifies_any_sni_name_against_the_emulator_ca(emulator: RunningEmulator) -> None:
    context = ssl.create_default_context(cadata=emulator.ca_pem)
    for name in ("news.example.org", "deep.sub.domain.example", "xn--caf-dma.example"):
        status, _, body = await get(
            f"https://127.0.0.1:{emulator.https_port}/a/1",
            headers={"Host": name}, server_hostname=name, ssl=context,
        )
        assert status == 200, name
        assert b"<html" in body


async def test_tls_fails_verification_without_the_emulator_ca(emulator: RunningEmulator) -> None:
    async with web_session_for(emulator, trust=False) as session:
        with pytest.raises(aiohttp.ClientConnectorCertificateError):
            await session.get("https://news.example.org/a/1")


async def test_each_sni_name_gets_a_certificate_for_that_name(emulator: RunningEmulator) -> None:
    context = ssl.create_default_context(cadata=emulator.ca_pem)
    context.check_hostname = False  # read the certificate the server picked, whatever its names
    _, writer = await asyncio.open_connection("127.0.0.1", emulator.https_port, ssl=context,
                                              server_hostname="other.example")
    try:
        cert = writer.get_extra_info("peercert")
    finally:
        writer.close()
        await writer.wait_closed()
    names = {value for kind, value in cert["subjectAltName"] if kind == "DNS"}
    assert "other.example" in names
    assert "news.example.org" not in names


# -- discovery of provider APIs ------------------------------------------------------------------------


async def test_api_modules_are_discovered_and_mounted_under_their_name(
    fake_apis: None, emulator_factory: MakeEmulator,
) -> None:
    names = [mount.name for mount in discover_apis()]
    assert "fakeapi" in names and "plainapi" in names
    assert "helper" not in names
    running = await emulator_factory(knobs=Knobs(seed=42))
    assert {"fakeapi", "plainapi"} <= set(running.providers)
    status, _, body = await get(f"{running.url}/fakeapi/echo")
    assert status == 200
    answer = json.loads(body)
    assert answer["seed"] == 42
    assert answer["path"] == "/fakeapi/echo"


async def test_env_points_every_provider_and_the_fetcher_at_the_emulator(
    fake_apis: None, emulator_factory: MakeEmulator,
) -> None:
    running = await emulator_factory()
    env = environment(running.info(), ca_file="/tmp/ca.pem")
    assert env["LINKMETER_FAKEAPI_BASE_URL"] == f"{running.url}/fakeapi"
    assert env["LINKMETER_PLAINAPI_BASE_URL"] == f"{running.url}/plainapi"
    for name in running.providers:
        assert env[f"LINKMETER_{name.upper()}_BASE_URL"] == f"{running.url}/{name}"
    assert env["LINKMETER_FETCH_ALLOW"] == "127.0.0.0/8"
    assert env["LINKMETER_FETCH_PORT_MAP"] == f"80={running.http_port},443={running.https_port}"
    assert env["LINKMETER_FETCH_CA_FILE"] == "/tmp/ca.pem"
    assert env["LINKMETER_DNS_SERVERS"] == f"127.0.0.1:{running.dns_port}"


async def test_the_info_endpoint_rebuilds_the_same_environment(emulator: RunningEmulator) -> None:
    _, _, body = await get(f"{emulator.url}/_emulator/info")
    assert (environment(EmulatorInfo.from_json(json.loads(body)), ca_file="/tmp/ca.pem")
            == environment(emulator.info(), ca_file="/tmp/ca.pem"))


def test_emulator_env_fixture_writes_the_ca(emulator: RunningEmulator, emulator_env: dict[str, str]) -> None:
    assert Path(emulator_env["LINKMETER_FETCH_CA_FILE"]).read_text() == emulator.ca_pem


# -- the DNS server --------------------------------------------------------------------------------------


async def test_dns_server_is_started_on_the_same_host_and_closed(
    emulator_factory: MakeEmulator, monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[dict[str, Any]] = []
    closed: list[bool] = []

    class FakeDns:
        port = 5353

        async def close(self) -> None:
            closed.append(True)

    async def start_dns_server(world: Any, **options: Any) -> FakeDns:
        calls.append({"seed": world.seed, **options})
        return FakeDns()

    monkeypatch.setitem(sys.modules, "linkmeter.emulator.dnsserver",
                        SimpleNamespace(start_dns_server=start_dns_server))
    knobs = Knobs(seed=3)
    running = await emulator_factory(dns_port=0, knobs=knobs)
    assert calls == [{"seed": 3, "host": "127.0.0.1", "port": 0, "answer_address": "127.0.0.1", "knobs": knobs}]
    assert running.dns_port == 5353
    assert running.info().dns == ("127.0.0.1", 5353)
    assert running.info().to_json()["dns"] == "127.0.0.1:5353"
    await running.close()
    assert closed == [True]


# -- knobs ---------------------------------------------------------------------------------------------


def test_delay_seconds_has_the_configured_median_and_a_realistic_spread() -> None:
    knobs = Knobs(latency_ms=200)
    rng = random.Random(1)
    draws = sorted(knobs.delay_seconds(rng) for _ in range(5000))
    assert statistics.median(draws) == pytest.approx(0.200, rel=0.05)
    p10, p90 = draws[500], draws[4500]
    assert p90 / p10 > 1.8  # a spread, not a constant
    assert draws[-1] < 2.0  # and no absurd tail
    assert Knobs().delay_seconds(rng) == 0.0


def test_fault_draws_are_a_function_of_seed_and_request_order() -> None:
    def delays(seed: int) -> list[float]:
        faults = Faults(Knobs(latency_ms=50, error_rate=0.3, seed=seed))
        return [faults.decide("hackernews", float(i)).delay for i in range(50)]

    assert delays(1) == delays(1)
    assert delays(1) != delays(2)


def test_error_rate_draws_match_the_rate() -> None:
    faults = Faults(Knobs(error_rate=0.25, seed=5))
    verdicts = [faults.decide("reddit", 0.0) for _ in range(4000)]
    failed = [v.error_status for v in verdicts if v.error_status is not None]
    assert len(failed) / len(verdicts) == pytest.approx(0.25, abs=0.03)
    assert set(failed) == {500, 503}
    assert all(v.delay == 0.0 and not v.hang for v in verdicts)


def test_token_bucket_grants_the_rate_and_says_how_long_to_wait() -> None:
    bucket = TokenBucket(2.0)
    assert bucket.take(0.0) == 0.0
    assert bucket.take(0.0) == 0.0
    assert bucket.take(0.0) == pytest.approx(0.5)
    assert bucket.take(0.25) == pytest.approx(0.25)
    assert bucket.take(0.5) == 0.0
    slow = TokenBucket(0.1)  # below one a second: still one request at a time
    assert slow.take(0.0) == 0.0
    assert slow.take(1.0) == pytest.approx(9.0)


async def test_error_rate_one_fails_apis_and_pages_with_plausible_bodies(
    fake_apis: None, emulator_factory: MakeEmulator,
) -> None:
    running = await emulator_factory(knobs=Knobs(error_rate=1.0))
    status, headers, body = await get(f"{running.url}/plainapi/hello")
    assert status in (500, 503)
    assert json.loads(body)["status"] == status
    status, headers, body = await get(f"{running.url}/a/1", headers={"Host": "news.example.org"})
    assert status in (500, 503)
    assert headers["Content-Type"].startswith("text/html")
    assert f"<h1>{status}".encode() in body
    # The info endpoint has no knobs: a faulty emulator can still be configured from its URL.
    status, _, _ = await get(f"{running.url}/_emulator/info")
    assert status == 200


async def test_error_statuses_are_shaped_like_each_provider() -> None:
    mounts = {mount.name: mount for mount in discover_apis()}
    rdap = mounts["rdap"].error_response(503)
    assert rdap.content_type == "application/rdap+json"
    assert b'"errorCode": 503' in rdap.body  # type: ignore[operator]
    reddit = mounts["reddit"].error_response(500)
    assert b'"error": 500' in reddit.body  # type: ignore[operator]
    assert mounts["wayback"].error_response(503).content_type == "text/html"
    hackernews = mounts["hackernews"].error_response(503)  # no hook: the generic JSON, Algolia's shape
    assert json.loads(hackernews.body) == {"message": "Service Unavailable", "status": 503}  # type: ignore[arg-type]


async def test_rate_limit_answers_429_with_retry_after_above_the_rate(
    fake_apis: None, emulator_factory: MakeEmulator,
) -> None:
    running = await emulator_factory(knobs=Knobs(rate_limits={"fakeapi": 0.5, "plainapi": 0.5, "page": 0.5}))
    # 0.5 req/s with a burst of one: the first request passes, the next ones within two seconds do not.
    results = [await get(f"{running.url}/fakeapi/echo") for _ in range(4)]
    assert results[0][0] == 200
    for status, headers, body in results[1:]:
        assert status == 429
        assert int(headers["Retry-After"]) >= 1
        assert json.loads(body) == {"fake": "slow down"}  # the module's own 429 shape
    generic = [await get(f"{running.url}/plainapi/hello") for _ in range(3)]
    assert generic[0][0] == 200
    assert generic[1][0] == 429
    assert int(generic[1][1]["Retry-After"]) >= 1
    assert json.loads(generic[1][2])["status"] == 429
    pages = [await get(f"{running.url}/a/{i}", headers={"Host": "news.example.org"}) for i in range(3)]
    assert [status for status, _, _ in pages] == [301, 429, 429]
    # Other providers are not limited.
    assert (await get(f"{running.url}/_emulator/info"))[0] == 200


async def test_stats_count_requests_429s_and_requests_that_ignore_retry_after(
    fake_apis: None, emulator_factory: MakeEmulator,
) -> None:
    running = await emulator_factory(knobs=Knobs(rate_limits={"fakeapi": 0.5}))
    # 0.5 req/s, burst one: 200, then 429 "Retry-After: 2"; the third request comes straight after the 429,
    # within the grace (it may have been sent before the 429 arrived); after a pause past the grace, the
    # fourth one is early.
    statuses = [(await get(f"{running.url}/fakeapi/echo"))[0] for _ in range(3)]
    await asyncio.sleep(running.stats.grace + 0.05)
    statuses.append((await get(f"{running.url}/fakeapi/echo"))[0])
    assert statuses == [200, 429, 429, 429]
    await get(f"{running.url}/plainapi/hello")
    await get(f"{running.url}/a/1", headers={"Host": "news.example.org"})
    status, headers, body = await get(f"{running.url}/_emulator/stats")
    assert status == 200 and headers["Content-Type"].startswith("application/json")
    document = json.loads(body)
    fake = document["providers"]["fakeapi"]
    assert fake["requests"] == 4 and fake["rate_limited"] == 3
    assert fake["early"] in (1, 2)  # the third request is early only if it came after the grace
    assert fake["max_rate_per_s"] >= 3 and fake["limit_per_s"] == 0.5 and fake["limit_burst"] == 1.0
    assert document["providers"]["plainapi"]["requests"] == 1
    assert document["providers"]["plainapi"]["limit_per_s"] is None
    assert document["providers"]["page"]["requests"] == 1
    assert document["grace_seconds"] == running.stats.grace
    # Another grace on request (each arrival during a Retry-After is kept with its delay after the 429).
    none_early = json.loads((await get(f"{running.url}/_emulator/stats?grace=60"))[2])
    assert none_early["grace_seconds"] == 60 and none_early["providers"]["fakeapi"]["early"] == 0
    assert none_early["providers"]["fakeapi"]["in_retry_after"] == 2
    for bad in ("-1", "soon", "nan", "inf"):
        assert (await get(f"{running.url}/_emulator/stats?grace={bad}"))[0] == 400
    # Reading the stats is no request to any provider; a reset starts the counters again.
    again = json.loads((await get(f"{running.url}/_emulator/stats"))[2])
    assert sum(p["requests"] for p in again["providers"].values()) == 6
    async with aiohttp.ClientSession() as session, session.post(f"{running.url}/_emulator/stats/reset") as resp:
        assert resp.status == 200
        cleared = await resp.json()
    assert cleared["providers"]["fakeapi"]["requests"] == 0 and cleared["providers"]["fakeapi"]["early"] == 0
    assert running.stats.snapshot() == cleared


async def test_hang_never_answers_and_close_still_returns(
    fake_apis: None, emulator_factory: MakeEmulator,
) -> None:
    running = await emulator_factory(knobs=Knobs(hang=frozenset({"fakeapi", "page"})))
    async with aiohttp.ClientSession() as session:
        pending = asyncio.ensure_future(session.get(f"{running.url}/fakeapi/echo"))
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.3):
                await asyncio.shield(pending)
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.3):
                await session.get(f"{running.url}/a/1", headers={"Host": "news.example.org"})
        # Other providers still answer while one hangs.
        async with session.get(f"{running.url}/plainapi/hello") as resp:
            assert resp.status == 200
        async with asyncio.timeout(5):  # a deadline for a clean shutdown, not a speed measurement
            await running.close()
            try:
                resp = await pending
            except aiohttp.ClientError:
                status = None  # the connection was dropped
            else:
                status = resp.status
                resp.release()
    assert status in (None, 503)


async def test_latency_knob_does_not_change_content(emulator_factory: MakeEmulator) -> None:
    quick = await emulator_factory(knobs=Knobs(seed=9))
    slow = await emulator_factory(knobs=Knobs(seed=9, latency_ms=5))
    url = "https://news.example.org/a/2"
    async with web_session_for(quick) as one, web_session_for(slow) as other, one.get(url) as a, other.get(url) as b:
        assert await a.read() == await b.read()


# -- determinism ---------------------------------------------------------------------------------------


async def test_same_seed_same_page_bytes_different_seed_different(emulator_factory: MakeEmulator) -> None:
    bodies = {}
    for label, seed in (("a", 7), ("b", 7), ("c", 8)):
        running = await emulator_factory(knobs=Knobs(seed=seed))
        async with web_session_for(running) as session:
            chunks = []
            for url in ("https://news.example.org/a/1", "https://techblog.example/blog/x", "https://lnk.example/q"):
                async with session.get(url, allow_redirects=False) as resp:
                    chunks.append(await resp.read() + resp.headers.get("Location", "").encode())
            bodies[label] = chunks
    assert bodies["a"] == bodies["b"]
    assert bodies["a"][0] != bodies["c"][0]
    assert bodies["a"][1] != bodies["c"][1]


# -- lifecycle -----------------------------------------------------------------------------------------


async def test_serve_forever_reports_ready_and_closes_when_cancelled() -> None:
    ready: asyncio.Queue[RunningEmulator] = asyncio.Queue()
    task = asyncio.create_task(serve_forever(knobs=Knobs(seed=4), ready=ready.put_nowait))
    running = await ready.get()
    status, _, body = await get(f"{running.url}/_emulator/info")
    assert status == 200
    assert json.loads(body)["seed"] == 4
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    with pytest.raises(aiohttp.ClientConnectorError):
        await get(f"{running.url}/_emulator/info")


async def test_close_is_idempotent_and_frees_the_ports() -> None:
    running = await start_emulator()
    await running.close()
    await running.close()
    with pytest.raises(aiohttp.ClientConnectorError):
        await get(f"{running.url}/_emulator/info")
    again = await start_emulator(port=running.http_port, https_port=running.https_port)
    try:
        assert (again.http_port, again.https_port) == (running.http_port, running.https_port)
    finally:
        await again.close()
