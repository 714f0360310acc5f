"""The shared HTTP client: page fetches, API calls, bounded bodies, TLS, demo substitutes, settings."""

from __future__ import annotations

import asyncio
import gzip
import socket
import ssl
import tracemalloc
import zlib
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

import pytest
import trustme
from aiohttp import web
from aiohttp.test_utils import TestServer
from multidict import CIMultiDict

from linkmeter.engine.http import error_for_status, parse_retry_after
from linkmeter.engine.provider import ProviderError
from linkmeter.engine.ssrf import FetchRefused
from tests.engine.conftest import MakeClient, lookup_from

ServerFactory = Callable[..., Awaitable[TestServer]]
LOOPBACK = ["127.0.0.1/32"]
PAYLOAD = bytes(range(256)) * 40  # 10240 bytes, every byte value, so a cut in the wrong place shows
HANG_STARTED = web.AppKey("hang_started", asyncio.Event)
HANG_RELEASE = web.AppKey("hang_release", asyncio.Event)
TEXT = ("<html><head><title>Hello</title></head><body>" + "word " * 2000 + "</body></html>").encode()


def gzip_members(*parts: bytes) -> bytes:
    return b"".join(gzip.compress(part) for part in parts)


def raw_deflate(data: bytes) -> bytes:
    packer = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    return packer.compress(data) + packer.flush()


def zeros_bomb(encoding: str, size: int = 50 * 1024 * 1024) -> bytes:
    wbits = {"gzip": 16 + zlib.MAX_WBITS, "deflate": zlib.MAX_WBITS}[encoding]
    packer = zlib.compressobj(9, zlib.DEFLATED, wbits)
    block = bytes(1024 * 1024)
    return b"".join(packer.compress(block) for _ in range(size // len(block))) + packer.flush()


@pytest.fixture(scope="module")
def bombs() -> dict[str, bytes]:
    return {encoding: zeros_bomb(encoding) for encoding in ("gzip", "deflate")}


def web_app(bombs: dict[str, bytes] | None = None) -> web.Application:
    started, release = asyncio.Event(), asyncio.Event()

    async def page(request: web.Request) -> web.Response:
        return web.Response(body=TEXT, content_type="text/html")

    async def missing(request: web.Request) -> web.Response:
        return web.Response(status=404, text="<html><title>Not here</title></html>", content_type="text/html")

    async def payload(request: web.Request) -> web.Response:
        return web.Response(body=PAYLOAD, content_type="application/octet-stream")

    async def endless(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        await response.prepare(request)
        chunk = b"x" * 65536
        for _ in range(2000):  # 128 MB unless the client hangs up first, which it should
            await response.write(chunk)
        return response

    async def encoded(request: web.Request) -> web.Response:
        kind = request.match_info["kind"]
        bodies = {
            "gzip": ("gzip", gzip.compress(TEXT)),
            "x-gzip": ("x-gzip", gzip.compress(TEXT)),
            "members": ("gzip", gzip_members(TEXT[:100], TEXT[100:])),
            "deflate": ("deflate", zlib.compress(TEXT)),
            "raw-deflate": ("deflate", raw_deflate(TEXT)),
            "identity": ("identity", TEXT),
            "br": ("br", b"\x0b\x02\x80hello\x03"),
            "corrupt": ("gzip", b"\x1f\x8b\x08\x00garbage-garbage-garbage"),
        }
        encoding, body = bodies[kind]
        return web.Response(body=body, headers={"Content-Encoding": encoding, "Content-Type": "text/html"})

    async def bomb(request: web.Request) -> web.Response:
        assert bombs is not None
        encoding = request.match_info["encoding"]
        return web.Response(body=bombs[encoding], headers={"Content-Encoding": encoding})

    async def echo(request: web.Request) -> web.Response:
        return web.json_response({
            "method": request.method,
            "host": request.headers.get("Host"),
            "accept_encoding": request.headers.get("Accept-Encoding"),
            "authorization": request.headers.get("Authorization"),
            "cookie": request.headers.get("Cookie"),
            "body": (await request.read()).decode(),
            "query": dict(request.query),
        })

    async def set_cookie(request: web.Request) -> web.Response:
        response = web.Response(text="cookie set")
        response.set_cookie("session", "secret-session-id")
        return response

    async def status(request: web.Request) -> web.Response:
        code = int(request.match_info["code"])
        headers = {"Retry-After": request.query["retry"]} if "retry" in request.query else {}
        return web.Response(status=code, text=f"status {code} says " + "z" * 500, headers=headers)

    async def redirect(request: web.Request) -> web.Response:
        return web.Response(status=int(request.query.get("code", "302")), headers={"Location": request.query["to"]})

    async def hang(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        await response.prepare(request)
        await response.write(b"partial ")
        started.set()
        await release.wait()
        return response

    app = web.Application()
    app[HANG_STARTED], app[HANG_RELEASE] = started, release
    app.router.add_get("/", page)
    app.router.add_get("/missing", missing)
    app.router.add_get("/payload", payload)
    app.router.add_get("/endless", endless)
    app.router.add_get("/encoded/{kind}", encoded)
    app.router.add_get("/bomb/{encoding}", bomb)
    app.router.add_route("*", "/echo", echo)
    app.router.add_get("/set-cookie", set_cookie)
    app.router.add_get("/status/{code}", status)
    app.router.add_route("*", "/redirect", redirect)
    app.router.add_get("/hang", hang)
    return app


@pytest.fixture
async def server(aiohttp_server: ServerFactory) -> TestServer:
    return await aiohttp_server(web_app())


def base(server: TestServer, host: str = "127.0.0.1") -> str:
    return f"http://{host}:{server.port}"


# --- page fetches -------------------------------------------------------------------------------------


async def test_fetch_page_returns_the_page_and_its_metadata(server: TestServer, make_client: MakeClient) -> None:
    client = make_client(allow=LOOPBACK)
    page = await client.fetch_page(f"{base(server)}/")
    assert page.status == 200
    assert page.body == TEXT
    assert page.truncated is False
    assert page.redirects == 0
    assert page.url == page.final_url == f"{base(server)}/"
    assert page.headers["Content-Type"].startswith("text/html")
    assert page.elapsed_ms >= 0
    assert client.session() is client.session()  # one session serves every call


async def test_an_error_status_page_is_a_result_not_an_exception(
    server: TestServer, make_client: MakeClient
) -> None:
    page = await make_client(allow=LOOPBACK).fetch_page(f"{base(server)}/missing")
    assert page.status == 404
    assert b"Not here" in page.body


@pytest.mark.parametrize(("cap", "truncated"), [(1000, True), (10239, True), (10240, False), (20000, False)])
async def test_the_body_is_cut_at_exactly_the_cap(
    cap: int, truncated: bool, server: TestServer, make_client: MakeClient
) -> None:
    page = await make_client(allow=LOOPBACK).fetch_page(f"{base(server)}/payload", max_bytes=cap)
    assert page.body == PAYLOAD[:cap]
    assert page.truncated is truncated


async def test_the_default_cap_comes_from_the_settings(server: TestServer, make_client: MakeClient) -> None:
    page = await make_client(allow=LOOPBACK, max_body=4096).fetch_page(f"{base(server)}/payload")
    assert (len(page.body), page.truncated) == (4096, True)


async def test_an_endless_streamed_body_is_cut_without_reading_it_all(
    server: TestServer, make_client: MakeClient
) -> None:
    page = await make_client(allow=LOOPBACK).fetch_page(f"{base(server)}/endless", max_bytes=300_000)
    assert page.body == b"x" * 300_000
    assert page.truncated is True


@pytest.mark.parametrize("kind", ["gzip", "x-gzip", "members", "deflate", "raw-deflate", "identity"])
async def test_compressed_pages_are_decoded(kind: str, server: TestServer, make_client: MakeClient) -> None:
    page = await make_client(allow=LOOPBACK).fetch_page(f"{base(server)}/encoded/{kind}")
    assert page.body == TEXT
    assert page.truncated is False


async def test_the_decoded_size_is_capped_exactly(server: TestServer, make_client: MakeClient) -> None:
    page = await make_client(allow=LOOPBACK).fetch_page(f"{base(server)}/encoded/gzip", max_bytes=123)
    assert page.body == TEXT[:123]
    assert page.truncated is True


async def test_only_decodable_encodings_are_advertised(server: TestServer, make_client: MakeClient) -> None:
    client = make_client(allow=LOOPBACK)
    response = await client.request("GET", f"{base(server)}/echo", headers={"Accept-Encoding": "br, zstd"})
    assert response.json()["accept_encoding"] == "gzip, deflate"


@pytest.mark.parametrize(("kind", "message"), [("br", "'br'"), ("corrupt", "cannot decode gzip")])
async def test_an_undecodable_body_is_a_final_error(
    kind: str, message: str, server: TestServer, make_client: MakeClient
) -> None:
    with pytest.raises(ProviderError, match=message) as info:
        await make_client(allow=LOOPBACK).fetch_page(f"{base(server)}/encoded/{kind}")
    assert info.value.retryable is False


@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
async def test_a_compression_bomb_is_cut_at_the_cap_in_bounded_memory(
    encoding: str, bombs: dict[str, bytes], aiohttp_server: ServerFactory, make_client: MakeClient
) -> None:
    bomb_server = await aiohttp_server(web_app(bombs))
    client = make_client(allow=LOOPBACK)
    cap = 1_000_000
    tracemalloc.start()
    try:
        page = await client.fetch_page(f"{base(bomb_server)}/bomb/{encoding}", max_bytes=cap)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert page.truncated is True
    assert page.body == bytes(cap)
    assert peak < 16 * 1024 * 1024  # the bomb inflates to 50 MB


async def test_a_compression_bomb_from_an_api_is_an_error(
    bombs: dict[str, bytes], aiohttp_server: ServerFactory, make_client: MakeClient
) -> None:
    bomb_server = await aiohttp_server(web_app(bombs))
    with pytest.raises(ProviderError, match="larger than 1000000 bytes") as info:
        await make_client(allow=LOOPBACK).request("GET", f"{base(bomb_server)}/bomb/gzip", max_bytes=1_000_000)
    assert info.value.retryable is False


async def test_cookies_set_by_one_page_are_not_sent_to_the_next(
    server: TestServer, make_client: MakeClient
) -> None:
    client = make_client(allow=LOOPBACK)
    await client.fetch_page(f"{base(server)}/set-cookie")
    assert (await client.request("GET", f"{base(server)}/echo")).json()["cookie"] is None


# --- API calls ----------------------------------------------------------------------------------------


async def test_request_returns_accepted_statuses(server: TestServer, make_client: MakeClient) -> None:
    client = make_client(allow=LOOPBACK)
    response = await client.request("GET", f"{base(server)}/echo", params={"q": "a b"})
    assert response.status == 200
    assert response.json()["query"] == {"q": "a b"}
    missing = await client.request("GET", f"{base(server)}/status/404", accept=(200, 404))
    assert missing.status == 404


@pytest.mark.parametrize(
    ("path", "status", "retryable", "rate_limited", "retry_after"),
    [
        ("/status/429?retry=7", 429, True, True, 7.0),
        ("/status/503?retry=2", 503, True, False, 2.0),
        ("/status/500", 500, True, False, None),
        ("/status/404", 404, False, False, None),
        ("/status/403", 403, False, False, None),
    ],
)
async def test_request_maps_unaccepted_statuses_to_provider_errors(
    path: str, status: int, retryable: bool, rate_limited: bool, retry_after: float | None,
    server: TestServer, make_client: MakeClient,
) -> None:
    with pytest.raises(ProviderError) as info:
        await make_client(allow=LOOPBACK).request("GET", f"{base(server)}{path}")
    error = info.value
    assert (error.status, error.retryable, error.rate_limited, error.retry_after) == (
        status, retryable, rate_limited, retry_after)
    assert f"status {status} says" in error.message


async def test_request_refuses_a_body_over_the_cap(server: TestServer, make_client: MakeClient) -> None:
    with pytest.raises(ProviderError, match="larger than 100 bytes") as info:
        await make_client(allow=LOOPBACK).request("GET", f"{base(server)}/payload", max_bytes=100)
    assert info.value.retryable is False


async def test_request_redirects_keep_or_change_the_method_as_http_says(
    server: TestServer, make_client: MakeClient
) -> None:
    client = make_client(allow=LOOPBACK)
    kept = await client.request("POST", f"{base(server)}/redirect?code=307&to=/echo", data=b"payload")
    assert (kept.json()["method"], kept.json()["body"]) == ("POST", "payload")
    changed = await client.request("POST", f"{base(server)}/redirect?code=303&to=/echo", data=b"payload")
    assert (changed.json()["method"], changed.json()["body"]) == ("GET", "")


async def test_credentials_do_not_follow_a_redirect_to_another_origin(
    server: TestServer, make_client: MakeClient
) -> None:
    lookup = lookup_from({"api.test": ["127.0.0.1"], "elsewhere.test": ["127.0.0.1"]})
    client = make_client(allow=["api.test", "elsewhere.test"], lookup=lookup)
    auth = {"Authorization": "Bearer key"}
    same = await client.request("GET", f"{base(server, 'api.test')}/redirect?to=/echo", headers=auth)
    assert same.json()["authorization"] == "Bearer key"
    other = f"{base(server, 'elsewhere.test')}/echo"
    moved = await client.request("GET", f"{base(server, 'api.test')}/redirect?to={other}", headers=auth)
    assert moved.json()["authorization"] is None
    assert moved.url == other


async def test_a_refused_connection_is_retryable(make_client: MakeClient) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(ProviderError) as info:
        await make_client(allow=LOOPBACK).fetch_page(f"http://127.0.0.1:{port}/")
    assert not isinstance(info.value, FetchRefused)
    assert info.value.retryable is True


async def test_a_cancelled_fetch_gives_its_connection_back(server: TestServer, make_client: MakeClient) -> None:
    client = make_client(allow=LOOPBACK, pool_size=1)  # a leaked connection would block the next call
    assert server.app is not None
    task = asyncio.create_task(client.fetch_page(f"{base(server)}/hang"))
    await server.app[HANG_STARTED].wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    for _ in range(3):
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.05):
                await client.fetch_page(f"{base(server)}/hang")
    server.app[HANG_RELEASE].set()
    async with asyncio.timeout(10):  # guards against a hang only
        page = await client.fetch_page(f"{base(server)}/")
    assert page.status == 200


# --- TLS and the demo substitutes ---------------------------------------------------------------------


async def tls_server(
    aiohttp_server: ServerFactory, ca: trustme.CA, sni: list[str | None]
) -> TestServer:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("site.test").configure_cert(context)

    def remember(sock: ssl.SSLObject | ssl.SSLSocket, name: str | None, ctx: ssl.SSLContext) -> None:
        sni.append(name)

    context.sni_callback = remember
    return await aiohttp_server(web_app(), ssl=context)


async def test_https_is_verified_against_the_configured_ca(
    aiohttp_server: ServerFactory, ca: trustme.CA, make_client: MakeClient
) -> None:
    sni: list[str | None] = []
    server = await tls_server(aiohttp_server, ca, sni)
    client = make_client(allow=["site.test"], ca_pem=ca.cert_pem.bytes().decode(),
                         lookup=lookup_from({"site.test": ["127.0.0.1"]}))
    page = await client.fetch_page(f"https://site.test:{server.port}/")
    assert (page.status, page.body) == (200, TEXT)
    assert sni == ["site.test"]


async def test_https_without_the_ca_is_refused_as_untrusted(
    aiohttp_server: ServerFactory, ca: trustme.CA, make_client: MakeClient
) -> None:
    server = await tls_server(aiohttp_server, ca, [])
    client = make_client(allow=["site.test"], lookup=lookup_from({"site.test": ["127.0.0.1"]}))
    with pytest.raises(ProviderError, match=r"TLS certificate of site\.test not trusted") as info:
        await client.fetch_page(f"https://site.test:{server.port}/")
    assert not isinstance(info.value, FetchRefused)
    assert info.value.retryable is False


async def test_a_certificate_for_another_name_is_refused_even_with_the_ca(
    aiohttp_server: ServerFactory, ca: trustme.CA, make_client: MakeClient
) -> None:
    server = await tls_server(aiohttp_server, ca, [])
    client = make_client(allow=["other.test"], ca_pem=ca.cert_pem.bytes().decode(),
                         lookup=lookup_from({"other.test": ["127.0.0.1"]}))
    with pytest.raises(ProviderError, match="not trusted") as info:
        await client.fetch_page(f"https://other.test:{server.port}/")
    assert info.value.retryable is False


async def test_port_map_dials_the_mapped_port_but_keeps_the_real_name(
    server: TestServer, make_client: MakeClient
) -> None:
    client = make_client(allow=["site.test"], port_map={80: server.port},
                         lookup=lookup_from({"site.test": ["127.0.0.1"]}))
    response = await client.request("GET", "http://site.test/echo")
    assert response.json()["host"] == "site.test"
    assert response.url == "http://site.test/echo"


async def test_demo_mode_fetches_a_real_https_url_from_the_emulator_port(
    aiohttp_server: ServerFactory, ca: trustme.CA, make_client: MakeClient
) -> None:
    sni: list[str | None] = []
    server = await tls_server(aiohttp_server, ca, sni)
    client = make_client(allow=["127.0.0.0/8"], port_map={443: server.port},
                         ca_pem=ca.cert_pem.bytes().decode(),
                         lookup=lookup_from({"site.test": ["127.0.0.1"]}))
    page = await client.fetch_page("https://site.test/")
    assert (page.status, page.final_url) == (200, "https://site.test/")
    assert sni == ["site.test"]


# --- settings -----------------------------------------------------------------------------------------


# --- status mapping -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("120", 120.0),
        (" 0 ", 0.0),
        ("Wed, 21 Oct 2015 07:28:30 GMT", 30.0),
        ("Wed, 21 Oct 2015 07:27:00 GMT", 0.0),  # already past
        ("soon", None),
        ("-5", None),
        ("", None),
        (None, None),
    ],
)
def test_retry_after_is_read_from_seconds_or_an_http_date(value: str | None, expected: float | None) -> None:
    now = datetime(2015, 10, 21, 7, 28, 0, tzinfo=UTC)
    assert parse_retry_after(value, now=now) == expected


@pytest.mark.parametrize(
    ("status", "retryable", "rate_limited"),
    [(429, True, True), (500, True, False), (502, True, False), (503, True, False),
     (400, False, False), (401, False, False), (404, False, False), (410, False, False)],
)
def test_error_for_status_says_what_is_worth_retrying(status: int, retryable: bool, rate_limited: bool) -> None:
    headers = CIMultiDict({"retry-after": "3"})
    error = error_for_status(status, headers, "https://api.example/x", "upstream says no")
    assert (error.status, error.retryable, error.rate_limited) == (status, retryable, rate_limited)
    assert error.retry_after == (3.0 if retryable else None)
    assert "https://api.example/x" in error.message
    assert "upstream says no" in error.message
