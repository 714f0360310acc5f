"""The emulator's DNS server over real UDP and TCP on loopback: zones, records, knobs."""

from __future__ import annotations

import asyncio

import dns.asyncquery
import dns.message
import dns.rcode
import pytest

from linkmeter.emulator.dnsserver import DnsServer, answer_zone
from linkmeter.engine.dns import DnsAnswer, DnsClient
from linkmeter.engine.provider import ProviderError
from tests.conftest import ServeDns
from tests.emulated_dns import WORLD, dns_client, find_domain


@pytest.fixture
def client(dns_server: DnsServer) -> DnsClient:
    return dns_client(dns_server)


async def a_record(client: DnsClient, name: str) -> DnsAnswer:
    return await client.query(name, "A")


async def test_binds_an_ephemeral_port(dns_server: DnsServer) -> None:
    assert dns_server.port > 0


async def test_a_records_start_with_the_answer_address(client: DnsClient) -> None:
    domain = find_domain(lambda f: f.registered and f.a_count == 3)
    answer = await a_record(client, domain)
    assert answer.rcode == "NOERROR"
    assert answer.records == ("127.0.0.1", "127.0.0.2", "127.0.0.3")


async def test_subdomains_share_the_registered_domains_facts(client: DnsClient) -> None:
    domain = find_domain(lambda f: f.registered and f.a_count == 2)
    assert (await a_record(client, f"www.deep.{domain}")).records == ("127.0.0.1", "127.0.0.2")


async def test_aaaa_records_are_ipv4_mapped_loopback(client: DnsClient) -> None:
    domain = find_domain(lambda f: f.registered and f.aaaa_count == 2)
    answer = await client.query(domain, "AAAA")
    assert answer.records == ("::ffff:127.0.0.1", "::ffff:127.0.0.2")
    none = find_domain(lambda f: f.registered and f.aaaa_count == 0)
    assert await client.query(none, "AAAA") == DnsAnswer(none, "AAAA", "NOERROR", ())


async def test_mx_and_ns_records(client: DnsClient) -> None:
    domain = find_domain(lambda f: f.registered and f.mx_count == 2 and f.ns_count == 3)
    mx = await client.query(domain, "MX")
    assert mx.records == (f"10 mail1.{domain}.", f"20 mail2.{domain}.")
    ns = await client.query(domain, "NS")
    assert len(ns.records) == 3
    assert all(r.startswith(f"ns{i}.") and r.endswith(".net.") for i, r in enumerate(ns.records, 1))


async def test_reserved_example_names_of_the_synthetic_web_resolve(client: DnsClient) -> None:
    for name in ("lnk.example", "hops.example", "www.site3.example.com"):
        answer = await a_record(client, name)
        assert answer.rcode == "NOERROR" and answer.records[0] == "127.0.0.1", name


async def test_unregistered_domains_and_non_domains_are_nxdomain(client: DnsClient) -> None:
    for name in ("unregistered-shop.com", "www.nxdomain-site.org", "localhost", "printer.local", "com", "co.uk",
                 "site.invalid"):
        assert (await a_record(client, name)).rcode == "NXDOMAIN", name


async def test_dnsbl_test_points(client: DnsClient) -> None:
    assert (await a_record(client, "dbltest.com.dbl.spamhaus.org")).records == ("127.0.1.2",)
    assert (await a_record(client, "test.surbl.org.multi.surbl.org")).records == ("127.0.0.216",)
    assert (await a_record(client, "test.uribl.com.multi.uribl.com")).records == ("127.0.0.14",)


async def test_clean_domain_is_nxdomain_on_every_list(client: DnsClient) -> None:
    domain = find_domain(lambda f: not f.dbl_code and not f.surbl_bits and not f.uribl_bits and not f.refused_zones)
    for zone in ("dbl.spamhaus.org", "multi.surbl.org", "multi.uribl.com"):
        assert (await a_record(client, f"{domain}.{zone}")).rcode == "NXDOMAIN"


async def test_listed_domain_answers_the_worlds_codes(client: DnsClient) -> None:
    domain = find_domain(lambda f: f.dbl_code == "127.0.1.4" and f.surbl_bits == 80 and not f.refused_zones,
                         prefix="spam")
    facts = WORLD.domain(domain)
    assert (await a_record(client, f"{domain}.dbl.spamhaus.org")).records == ("127.0.1.4",)
    assert (await a_record(client, f"{domain}.multi.surbl.org")).records == ("127.0.0.80",)
    assert (await a_record(client, f"{domain}.multi.uribl.com")).records == (f"127.0.0.{facts.uribl_bits}",)
    txt = await client.query(f"{domain}.multi.surbl.org", "TXT")
    assert txt.records == (f'"Blocked, {domain} on lists [mw,abuse], See: http://www.surbl.org/lists.html"',)


async def test_host_parts_are_listed_on_dbl_only(client: DnsClient) -> None:
    domain = find_domain(lambda f: bool(f.dbl_code and f.surbl_bits) and not f.refused_zones, prefix="spam")
    assert (await a_record(client, f"www.{domain}.dbl.spamhaus.org")).rcode == "NOERROR"
    assert (await a_record(client, f"www.{domain}.multi.surbl.org")).rcode == "NXDOMAIN"


@pytest.mark.parametrize(("zone", "key", "code"), [
    ("dbl.spamhaus.org", "dbl", "127.255.255.254"),
    ("multi.surbl.org", "surbl", "127.0.0.1"),
    ("multi.uribl.com", "uribl", "127.0.0.1"),
])
async def test_refused_zones_answer_the_refusal_code(client: DnsClient, zone: str, key: str, code: str) -> None:
    domain = find_domain(lambda f: f.refused_zones == {key}, prefix="refused")
    assert (await a_record(client, f"{domain}.{zone}")).records == (code,)


async def test_uribl_refusal_text(client: DnsClient) -> None:
    domain = find_domain(lambda f: f.refused_zones == {"uribl"}, prefix="refused")
    (text,) = (await client.query(f"{domain}.multi.uribl.com", "TXT")).records
    assert text.startswith('"127.0.0.1 -> Query Refused. See http://uribl.com/refused.shtml')
    assert "[Your DNS IP: 127.0.0.1]" in text


def test_ip_queries_against_dbl_get_the_ip_error_code() -> None:
    answer = answer_zone(WORLD, "dbl", "2.0.0.127", "A")
    assert answer.records == ("127.0.1.255",)
    assert answer_zone(WORLD, "surbl", "2.0.0.127", "A").rcode == dns.rcode.NXDOMAIN


async def test_tcp_gives_the_same_answers_as_udp(dns_server: DnsServer) -> None:
    query = dns.message.make_query("dbltest.com.dbl.spamhaus.org", "A")
    via_tcp = await dns.asyncquery.tcp(query, "127.0.0.1", port=dns_server.port, timeout=2)
    via_udp = await dns.asyncquery.udp(query, "127.0.0.1", port=dns_server.port, timeout=2)
    assert via_tcp.answer == via_udp.answer
    assert [r.to_text() for r in via_tcp.answer[0]] == ["127.0.1.2"]


async def test_tcp_connection_serves_several_queries(dns_server: DnsServer) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", dns_server.port)
    try:
        for name in ("dbltest.com.dbl.spamhaus.org", "unregistered-x.com"):
            wire = dns.message.make_query(name, "A").to_wire()
            writer.write(len(wire).to_bytes(2, "big") + wire)
            await writer.drain()
            size = int.from_bytes(await reader.readexactly(2), "big")
            response = dns.message.from_wire(await reader.readexactly(size))
            assert response.question[0].name.to_text() == name + "."
    finally:
        writer.close()
        await writer.wait_closed()


async def test_error_rate_answers_servfail(serve_dns: ServeDns) -> None:
    running = await serve_dns(error_rate=1.0)
    query = dns.message.make_query("example.com", "A")
    response = await dns.asyncquery.udp(query, "127.0.0.1", port=running.port, timeout=2)
    assert response.rcode() == dns.rcode.SERVFAIL
    client = dns_client(running)
    with pytest.raises(ProviderError) as caught:
        await client.query("example.com", "A")
    assert caught.value.retryable


async def test_rate_limit_answers_the_excessive_queries_codes(serve_dns: ServeDns) -> None:
    # 0.01/s: one query in the burst, the next token a hundred seconds away.
    running = await serve_dns(rate_limits={"dnsbl": 0.01})
    client = dns_client(running)
    assert (await a_record(client, "dbltest.com.dbl.spamhaus.org")).records == ("127.0.1.2",)
    assert (await a_record(client, "dbltest.com.dbl.spamhaus.org")).records == ("127.255.255.255",)
    assert (await a_record(client, "test.surbl.org.multi.surbl.org")).records == ("127.0.0.1",)
    assert (await a_record(client, "test.uribl.com.multi.uribl.com")).records == ("127.0.0.1",)
    # plain names are not under the dnsbl limit
    assert (await a_record(client, "dbltest.com")).rcode == "NOERROR"


@pytest.mark.parametrize(("hang", "silent", "answered"), [
    ("dnsbl", "dbltest.com.dbl.spamhaus.org", "dbltest.com"),
    ("dns", "dbltest.com", "dbltest.com.dbl.spamhaus.org"),
])
async def test_hang_silences_one_kind_of_query(serve_dns: ServeDns, hang: str, silent: str, answered: str) -> None:
    running = await serve_dns(hang=frozenset({hang}))
    client = dns_client(running, timeout=0.3)
    assert (await a_record(client, answered)).rcode == "NOERROR"
    with pytest.raises(ProviderError) as caught:
        await a_record(client, silent)
    assert caught.value.retryable


async def test_close_ends_hanging_tcp_connections(serve_dns: ServeDns) -> None:
    running = await serve_dns(hang=frozenset({"dns"}))
    reader, writer = await asyncio.open_connection("127.0.0.1", running.port)
    wire = dns.message.make_query("example.com", "A").to_wire()
    writer.write(len(wire).to_bytes(2, "big") + wire)
    await writer.drain()
    await asyncio.wait_for(running.close(), timeout=10)
    try:
        rest = await reader.read()
    except ConnectionResetError:  # closed before it read our query: the kernel resets instead
        rest = b""
    assert rest == b""
    writer.close()


async def test_latency_still_answers(serve_dns: ServeDns) -> None:
    running = await serve_dns(latency_ms=5.0)
    client = dns_client(running)
    assert (await a_record(client, "dbltest.com.dbl.spamhaus.org")).records == ("127.0.1.2",)


async def test_answers_are_a_function_of_the_world_seed(serve_dns: ServeDns) -> None:
    first, second = await serve_dns(), await serve_dns()
    names = [f"site{i}.com" for i in range(20)]
    answers = []
    for running in (first, second):
        client = dns_client(running)
        answers.append([await client.query(name, rdtype) for name in names for rdtype in ("A", "MX", "NS")])
    assert answers[0] == answers[1]

