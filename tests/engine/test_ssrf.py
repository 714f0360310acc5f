"""The SSRF guard of the shared HTTP client: literals, resolved names, redirects, the allow list, DNS."""

from __future__ import annotations

import asyncio
import ipaddress
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping

import dns.message
import dns.rcode
import dns.rdatatype
import dns.rrset
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from hypothesis import given
from hypothesis import strategies as st
from yarl import URL

from linkmeter.engine.http import HttpClient, HttpSettings
from linkmeter.engine.provider import ProviderError
from linkmeter.engine.ssrf import AllowList, FetchRefused, blocked_reason, host_address
from tests.engine.conftest import MakeClient, lookup_from

ServerFactory = Callable[..., Awaitable[TestServer]]


class Secret:
    """A loopback server whose /secret must never be reached by a refused fetch."""

    def __init__(self) -> None:
        self.hits = 0

    def app(self) -> web.Application:
        async def secret(request: web.Request) -> web.Response:
            self.hits += 1
            return web.Response(text="internal data")

        async def redirect(request: web.Request) -> web.Response:
            return web.Response(status=302, headers={"Location": request.query["to"]})

        async def hop(request: web.Request) -> web.Response:
            left = int(request.match_info["left"])
            if left == 0:
                return web.Response(text="arrived")
            raise web.HTTPFound(f"/hop/{left - 1}")  # relative: resolved against the current URL

        app = web.Application()
        app.router.add_get("/secret", secret)
        app.router.add_get("/redirect", redirect)
        app.router.add_get("/hop/{left}", hop)
        return app


@pytest.fixture
async def secret(aiohttp_server: ServerFactory) -> tuple[Secret, TestServer]:
    state = Secret()
    return state, await aiohttp_server(state.app())


def assert_blocked(exc: FetchRefused, host: str, address: str) -> None:
    assert exc.code == "blocked_address"
    assert exc.retryable is False
    assert host in exc.message
    assert address in exc.message
    assert "LINKMETER_FETCH_ALLOW" in exc.message


LOOPBACK_SPELLINGS = [
    "127.0.0.1",
    "2130706433",
    "0x7f000001",
    "0X7F000001",
    "0177.0.0.1",
    "0177.0000.0000.0001",
    "127.1",
    "127.0.1",
    "0x7f.1",
    "0x7f.0.0.0x1",
    "127.0.0.1.",
    "127.255.255.254",
    "[::1]",
    "[0:0:0:0:0:0:0:1]",
    "[::ffff:127.0.0.1]",
    "[::ffff:7f00:1]",
    "[::ffff:0:7f00:1]",
    "[::127.0.0.1]",
    "[64:ff9b::127.0.0.1]",
    "[2002:7f00:1::1]",
]


@pytest.mark.parametrize("host", LOOPBACK_SPELLINGS)
async def test_every_spelling_of_loopback_is_refused_before_connecting(
    host: str, secret: tuple[Secret, TestServer], make_client: MakeClient
) -> None:
    state, server = secret
    client = make_client()
    with pytest.raises(FetchRefused) as info:
        await client.fetch_page(f"http://{host}:{server.port}/secret")
    assert info.value.code == "blocked_address"
    assert "LINKMETER_FETCH_ALLOW" in info.value.message
    assert state.hits == 0


@pytest.mark.parametrize(
    ("host", "address"),
    [
        ("10.0.0.1", "10.0.0.1"),
        ("012.0.0.1", "10.0.0.1"),
        ("167772161", "10.0.0.1"),
        ("172.16.0.1", "172.16.0.1"),
        ("172.31.255.254", "172.31.255.254"),
        ("192.168.1.1", "192.168.1.1"),
        ("0xc0a80101", "192.168.1.1"),
        ("100.64.0.1", "100.64.0.1"),
        ("100.127.255.254", "100.127.255.254"),
        ("169.254.169.254", "169.254.169.254"),
        ("2852039166", "169.254.169.254"),
        ("0xa9.0xfe.0xa9.0xfe", "169.254.169.254"),
        ("0.0.0.0", "0.0.0.0"),
        ("0", "0.0.0.0"),
        ("0.1.2.3", "0.1.2.3"),
        ("224.0.0.1", "224.0.0.1"),
        ("239.255.255.250", "239.255.255.250"),
        ("240.0.0.1", "240.0.0.1"),
        ("255.255.255.255", "255.255.255.255"),
        ("192.0.2.1", "192.0.2.1"),
        ("198.18.0.1", "198.18.0.1"),
        ("[::]", "::"),
        ("[fc00::1]", "fc00::1"),
        ("[fd00:ec2::254]", "fd00:ec2::254"),
        ("[fe80::1]", "fe80::1"),
        ("[fe80::1%25eth0]", "fe80::1"),
        ("[fec0::1]", "fec0::1"),
        ("[ff02::1]", "ff02::1"),
        ("[2001:db8::1]", "2001:db8::1"),
        ("[::ffff:10.0.0.1]", "10.0.0.1"),
        ("[::ffff:169.254.169.254]", "169.254.169.254"),
        ("[::ffff:192.168.0.1]", "192.168.0.1"),
        ("[::ffff:100.64.0.1]", "100.64.0.1"),
        ("[::ffff:0.0.0.0]", "0.0.0.0"),
        ("[64:ff9b::10.0.0.1]", "10.0.0.1"),
        ("[2002:a9fe:a9fe::]", "169.254.169.254"),
    ],
)
async def test_private_and_special_ip_literals_are_refused(
    host: str, address: str, make_client: MakeClient
) -> None:
    client = make_client(lookup=lookup_from({}))
    with pytest.raises(FetchRefused) as info:
        await client.fetch_page(f"http://{host}/latest/meta-data/")
    assert info.value.code == "blocked_address"
    assert address in info.value.message
    assert "LINKMETER_FETCH_ALLOW" in info.value.message


@pytest.mark.parametrize(
    "addresses",
    [
        ["127.0.0.1"],
        ["10.0.0.1"],
        ["172.16.5.4"],
        ["192.168.1.1"],
        ["100.64.0.1"],
        ["169.254.169.254"],
        ["0.0.0.0"],
        ["224.0.0.251"],
        ["::1"],
        ["fc00::1"],
        ["fd12:3456::1"],
        ["fe80::1"],
        ["ff02::1"],
        ["::ffff:10.0.0.1"],
        ["::ffff:127.0.0.1"],
        ["::ffff:169.254.169.254"],
        ["93.184.216.34", "10.0.0.1"],
        ["2606:2800:220:1::1", "::ffff:10.0.0.1"],
    ],
)
async def test_a_name_resolving_to_any_non_global_address_is_refused(
    addresses: list[str], secret: tuple[Secret, TestServer], make_client: MakeClient
) -> None:
    state, server = secret
    client = make_client(lookup=lookup_from({"evil.test": addresses}))
    with pytest.raises(FetchRefused) as info:
        await client.fetch_page(f"http://evil.test:{server.port}/secret")
    assert_blocked(info.value, "evil.test", addresses[-1])
    assert state.hits == 0


async def test_api_requests_are_guarded_too(
    secret: tuple[Secret, TestServer], make_client: MakeClient
) -> None:
    state, server = secret
    client = make_client(lookup=lookup_from({"api.test": ["127.0.0.1"]}))
    for url in (f"http://127.0.0.1:{server.port}/secret", f"http://api.test:{server.port}/secret"):
        with pytest.raises(FetchRefused) as info:
            await client.request("GET", url)
        assert info.value.code == "blocked_address"
    assert state.hits == 0


@pytest.mark.parametrize(
    "target",
    [
        "http://127.0.0.1:{port}/secret",
        "http://2130706433:{port}/secret",
        "http://[::ffff:127.0.0.1]:{port}/secret",
        "http://internal.test:{port}/secret",
    ],
)
async def test_a_redirect_from_an_allowed_server_to_an_internal_target_is_refused(
    target: str, secret: tuple[Secret, TestServer], make_client: MakeClient
) -> None:
    state, server = secret
    lookup = lookup_from({"allowed.test": ["127.0.0.1"], "internal.test": ["127.0.0.1"]})
    client = make_client(allow=["allowed.test"], lookup=lookup)
    start = URL(f"http://allowed.test:{server.port}/redirect").with_query(to=target.format(port=server.port))

    with pytest.raises(FetchRefused) as info:
        await client.fetch_page(str(start))

    assert info.value.code == "blocked_address"
    assert state.hits == 0
    # The same page straight from the allowed name is fetched: the refusal is the redirect target's.
    page = await client.fetch_page(f"http://allowed.test:{server.port}/secret")
    assert (page.status, page.body) == (200, b"internal data")


async def test_five_redirects_are_followed(secret: tuple[Secret, TestServer], make_client: MakeClient) -> None:
    _, server = secret
    client = make_client(allow=["127.0.0.1/32"])
    page = await client.fetch_page(f"http://127.0.0.1:{server.port}/hop/5")
    assert page.status == 200
    assert page.redirects == 5
    assert page.final_url == f"http://127.0.0.1:{server.port}/hop/0"
    assert page.url == f"http://127.0.0.1:{server.port}/hop/5"
    assert page.body == b"arrived"


async def test_a_sixth_redirect_is_refused(secret: tuple[Secret, TestServer], make_client: MakeClient) -> None:
    _, server = secret
    client = make_client(allow=["127.0.0.1/32"])
    with pytest.raises(FetchRefused) as info:
        await client.fetch_page(f"http://127.0.0.1:{server.port}/hop/6")
    assert info.value.code == "too_many_redirects"
    assert info.value.retryable is False


async def test_the_redirect_limit_is_a_setting(secret: tuple[Secret, TestServer], make_client: MakeClient) -> None:
    _, server = secret
    client = make_client(allow=["127.0.0.1/32"], max_redirects=1)
    assert (await client.fetch_page(f"http://127.0.0.1:{server.port}/hop/1")).redirects == 1
    with pytest.raises(FetchRefused, match="more than 1 redirects"):
        await client.fetch_page(f"http://127.0.0.1:{server.port}/hop/2")


@pytest.mark.parametrize(
    "location",
    [
        "ftp://127.0.0.1/file",
        "file:///etc/passwd",
        "javascript:alert(1)",
        "gopher://127.0.0.1:6379/_INFO",
        "data:text/html,hello",
        "http://[::1",
        "http://",
    ],
)
async def test_a_redirect_to_a_non_http_or_unparseable_location_is_refused(
    location: str, secret: tuple[Secret, TestServer], make_client: MakeClient
) -> None:
    _, server = secret
    client = make_client(allow=["127.0.0.1/32"])
    start = URL(f"http://127.0.0.1:{server.port}/redirect").with_query(to=location)
    with pytest.raises(FetchRefused) as info:
        await client.fetch_page(str(start))
    assert info.value.code == "bad_redirect"
    assert info.value.retryable is False


@pytest.mark.parametrize("url", ["ftp://example.com/", "file:///etc/passwd", "not a url"])
async def test_only_http_urls_are_fetched(url: str, make_client: MakeClient) -> None:
    with pytest.raises(FetchRefused) as info:
        await make_client().fetch_page(url)
    assert info.value.code == "bad_url"


# --- the allow list -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("allow", "table", "allowed", "refused", "address"), [
    pytest.param(["127.0.0.1/32"], {}, "127.0.0.1", "127.0.0.2", "127.0.0.2",
                 id="an allowed network lets only its addresses through"),
    pytest.param(["127.0.0.0/8"], {"one.test": ["127.0.0.1"], "two.test": ["127.0.0.1", "10.0.0.1"]},
                 "one.test", "two.test", "10.0.0.1",
                 id="a name is allowed only when each of its addresses is in an allowed network"),
])
async def test_the_allow_list_lets_through_only_what_it_allows(
    allow: list[str], table: dict[str, list[str]], allowed: str, refused: str, address: str,
    secret: tuple[Secret, TestServer], make_client: MakeClient,
) -> None:
    _, server = secret
    client = make_client(allow=allow, lookup=lookup_from(table) if table else None)
    assert (await client.fetch_page(f"http://{allowed}:{server.port}/secret")).status == 200
    with pytest.raises(FetchRefused) as info:
        await client.fetch_page(f"http://{refused}:{server.port}/secret")
    assert_blocked(info.value, refused, address)


async def test_an_allowed_host_name_is_let_through_whatever_it_resolves_to(
    secret: tuple[Secret, TestServer], make_client: MakeClient
) -> None:
    _, server = secret
    lookup = lookup_from({"emulator.test": ["127.0.0.1"], "other.test": ["127.0.0.1"],
                          "sub.emulator.test": ["127.0.0.1"]})
    client = make_client(allow=["Emulator.Test"], lookup=lookup)
    assert (await client.fetch_page(f"http://emulator.test:{server.port}/secret")).status == 200
    with pytest.raises(FetchRefused):
        await client.fetch_page(f"http://other.test:{server.port}/secret")
    with pytest.raises(FetchRefused):
        await client.fetch_page(f"http://sub.emulator.test:{server.port}/secret")


def test_allow_list_entries_parse_as_hosts_addresses_and_networks() -> None:
    allow = AllowList.parse(["127.0.0.0/8", "emulator.local", "::1", "[fd00::]/8", " 10.1.2.3 ", ""])
    assert allow.hosts == frozenset({"emulator.local"})
    assert allow.allows_address(ipaddress.ip_address("127.9.9.9"))
    assert allow.allows_address(ipaddress.ip_address("::1"))
    assert allow.allows_address(ipaddress.ip_address("::ffff:127.0.0.1"))
    assert allow.allows_address(ipaddress.ip_address("10.1.2.3"))
    assert not allow.allows_address(ipaddress.ip_address("10.1.2.4"))
    assert not allow.allows_address(ipaddress.ip_address("::2"))
    assert allow.allows_host("EMULATOR.local.")


@pytest.mark.parametrize("entry", ["10.0.0.0/33", "http://example.com/", "two words", "a/b", "1.2.3.4:80"])
def test_a_bad_allow_list_entry_is_a_clear_error(entry: str) -> None:
    with pytest.raises(ValueError, match="not a host name, an IP address or a CIDR"):
        AllowList.parse([entry])
    with pytest.raises(ValueError, match=re.escape(repr(entry))):
        HttpClient(HttpSettings(allow=[entry]))


# --- the address policy -------------------------------------------------------------------------------


@given(st.integers(min_value=0, max_value=2**32 - 1))
def test_numeric_ipv4_spellings_name_the_address_inet_aton_would(value: int) -> None:
    expected = ipaddress.IPv4Address(value)
    a, b, c, d = expected.packed
    for spelling in (str(value), hex(value), f"0{value:o}", f"{a}.{(b << 16) | (c << 8) | d}",
                     f"{a}.{b}.{(c << 8) | d}", f"{a:#x}.0{b:o}.{c}.{d}", f"{expected}."):
        assert host_address(spelling) == expected


@given(st.sampled_from(["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "127.0.0.0/8", "100.64.0.0/10",
                        "169.254.0.0/16", "0.0.0.0/8", "224.0.0.0/4", "240.0.0.0/4"]).flatmap(
    lambda net: st.ip_addresses(network=net)))
def test_non_global_ipv4_is_blocked_in_every_ipv6_embedding(ip: ipaddress.IPv4Address) -> None:
    assert blocked_reason(ip) is not None
    value = int(ip)
    for embedded in (f"::ffff:{ip}", f"::ffff:0:{ip}", f"64:ff9b::{ip}", f"::{ip}",
                     str(ipaddress.IPv6Address((0x2002 << 112) | (value << 80)))):
        assert blocked_reason(ipaddress.IPv6Address(embedded)) is not None, embedded


@pytest.mark.parametrize("address", ["93.184.216.34", "8.8.8.8", "2606:2800:220:1::1", "::ffff:8.8.8.8"])
def test_globally_routable_addresses_pass(address: str) -> None:
    assert blocked_reason(ipaddress.ip_address(address)) is None


def test_public_numeric_spellings_are_sent_in_canonical_form(make_client: MakeClient) -> None:
    client = make_client()
    assert client.check_url(URL("http://134744072/path?q=1")) == URL("http://8.8.8.8/path?q=1")
    assert client.check_url(URL("http://0x8.0x8.0x8.0x8:81/")) == URL("http://8.8.8.8:81/")
    assert client.check_url(URL("http://example.com/")) == URL("http://example.com/")


def test_the_kept_verdict_for_a_host_decides_the_same_every_time(make_client: MakeClient) -> None:
    """check_url keeps each host's verdict (it runs on every request): a kept refusal is still a fresh
    refusal, a kept canonical spelling still rewrites the URL, whatever the path or port."""
    client = make_client()
    for path in ("/a", "/b?x=1"):
        with pytest.raises(FetchRefused) as info:
            client.check_url(URL(f"http://0x7f000001{path}"))
        assert info.value.code == "blocked_address"
        assert "loopback" in str(info.value)
        with pytest.raises(FetchRefused) as bad:
            client.check_url(URL(f"http://999999999999{path}"))
        assert bad.value.code == "bad_url"
        assert client.check_url(URL(f"http://134744072:81{path}")) == URL(f"http://8.8.8.8:81{path}")
    allowed = make_client(allow=["127.0.0.0/8"])
    assert allowed.check_url(URL("http://2130706433/x")) == URL("http://127.0.0.1/x")
    assert allowed.check_url(URL("http://2130706433/y")) == URL("http://127.0.0.1/y")


def test_an_all_numeric_host_that_is_no_address_is_refused() -> None:
    with pytest.raises(FetchRefused) as info:
        host_address("256.256.256.256")
    assert info.value.code == "bad_url"
    assert host_address("1.2.3.example") is None


# --- resolution ---------------------------------------------------------------------------------------


async def test_the_connector_dials_exactly_the_checked_answer(
    secret: tuple[Secret, TestServer], make_client: MakeClient
) -> None:
    _, server = secret
    calls: list[str] = []

    async def rebinding(host: str) -> list[str]:
        calls.append(host)
        # A rebinding server would answer privately the second time; the client never asks twice.
        return ["127.0.0.1"] if len(calls) == 1 else ["10.0.0.1"]

    client = make_client(allow=["127.0.0.1/32"], lookup=rebinding)
    page = await client.fetch_page(f"http://rebind.test:{server.port}/secret")
    assert page.status == 200
    assert calls == ["rebind.test"]


class TinyDns(asyncio.DatagramProtocol):
    """A UDP DNS server on 127.0.0.1 answering from a table; unknown names are NXDOMAIN."""

    def __init__(self, records: Mapping[tuple[str, str], list[str]]) -> None:
        self.records = records
        self.names = {name for name, _ in records}
        self.transport: asyncio.DatagramTransport | None = None
        self.questions: list[tuple[str, str]] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.DatagramTransport)
        self.transport = transport

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        query = dns.message.from_wire(data)
        response = dns.message.make_response(query)
        question = query.question[0]
        name = question.name.to_text().lower()
        rdtype = dns.rdatatype.to_text(question.rdtype)
        self.questions.append((name, rdtype))
        if name not in self.names:
            response.set_rcode(dns.rcode.NXDOMAIN)
        elif values := self.records.get((name, rdtype)):
            response.answer.append(dns.rrset.from_text_list(question.name, 60, "IN", rdtype, values))
        assert self.transport is not None
        self.transport.sendto(response.to_wire(), addr)


@pytest.fixture
async def tiny_dns() -> AsyncIterator[TinyDns]:
    server = TinyDns({
        ("site.test.", "A"): ["127.0.0.1"],
        ("private.test.", "A"): ["10.0.0.1"],
        ("mapped.test.", "AAAA"): ["::ffff:10.0.0.1"],
        ("dual.test.", "A"): ["127.0.0.1"],
        ("dual.test.", "AAAA"): ["fd00::1"],
    })
    transport, _ = await asyncio.get_running_loop().create_datagram_endpoint(
        lambda: server, local_addr=("127.0.0.1", 0))
    try:
        yield server
    finally:
        transport.close()


def dns_address(server: TinyDns) -> tuple[str, int]:
    assert server.transport is not None
    host, port = server.transport.get_extra_info("sockname")[:2]
    return str(host), int(port)


async def test_dns_servers_setting_resolves_through_those_servers(
    tiny_dns: TinyDns, secret: tuple[Secret, TestServer], make_client: MakeClient
) -> None:
    _, server = secret
    client = make_client(dns_servers=[dns_address(tiny_dns)], allow=["127.0.0.1/32"])
    page = await client.fetch_page(f"http://site.test:{server.port}/secret")
    assert (page.status, page.body) == (200, b"internal data")
    assert ("site.test.", "A") in tiny_dns.questions
    assert ("site.test.", "AAAA") in tiny_dns.questions


@pytest.mark.parametrize(("name", "address"), [("private.test", "10.0.0.1"), ("mapped.test", "::ffff:10.0.0.1"),
                                                ("dual.test", "fd00::1")])
async def test_private_answers_from_dns_servers_are_refused(
    name: str, address: str, tiny_dns: TinyDns, secret: tuple[Secret, TestServer], make_client: MakeClient
) -> None:
    state, server = secret
    client = make_client(dns_servers=[dns_address(tiny_dns)], allow=["127.0.0.1/32"])
    with pytest.raises(FetchRefused) as info:
        await client.fetch_page(f"http://{name}:{server.port}/secret")
    assert_blocked(info.value, name, address)
    assert state.hits == 0


async def test_an_unknown_name_is_a_final_error(tiny_dns: TinyDns, make_client: MakeClient) -> None:
    client = make_client(dns_servers=[dns_address(tiny_dns)])
    with pytest.raises(ProviderError, match="NXDOMAIN") as info:
        await client.fetch_page("http://missing.test/")
    assert not isinstance(info.value, FetchRefused)
    assert info.value.retryable is False
