"""The 2012 design's provider calls, for the bench only: blocking HTTP (urllib3) and DNS (dnspython), one call
each, reading the same wire formats as the providers (their pure parsing functions are reused)."""

from __future__ import annotations

import ipaddress
import socket
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urljoin

import dns.resolver
import urllib3
from multidict import CIMultiDict, CIMultiDictProxy
from urllib3.util import connection as urllib3_connection

from linkmeter.engine.http import PageFetch
from linkmeter.engine.urls import host_of, registered_domain, url_variants
from linkmeter.providers import hackernews, rdap, reddit, wayback
from linkmeter.providers.dns import RECORD_TYPES
from linkmeter.providers.dnsbl import CLEAN, DECODERS, DEFAULT_ZONES, LISTED, LISTS, REFUSED
from linkmeter.providers.page import page_signals
from linkmeter.providers.registry import PROVIDERS

PAGE_MAX_BYTES = 5 * 1024 * 1024
MAX_REDIRECTS = 5
REDIRECTS = frozenset({301, 302, 303, 307, 308})
# The providers' own call timeouts and cache TTLs (their policies), so a slow answer costs the same here as
# in the engine, and an answer is reused as long.
TIMEOUTS = {cls.name: cls.policy.timeout for cls in PROVIDERS}
CACHE_TTLS = {cls.name: int(cls.policy.cache_ttl) for cls in PROVIDERS}
ROUND_TWO = ("dns", "rdap", "dnsbl", "wayback", "hackernews", "reddit")


@dataclass(slots=True)
class Answer:
    """One provider call's outcome, as it travels between tasks (JSON)."""

    status: str  # ok, cached or error
    signals: dict[str, Any]
    requests: int  # upstream HTTP requests and DNS queries made
    ms: float
    message: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {"status": self.status, "signals": self.signals, "requests": self.requests, "ms": round(self.ms, 1),
                "message": self.message}


class BlockingCalls:
    """What one worker process uses to make provider calls: one urllib3 pool, one DNS resolver."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        self.base = {name: environ.get(f"LINKMETER_{name.upper()}_BASE_URL", "").rstrip("/")
                     for name in ("rdap", "wayback", "hackernews", "reddit")}
        self.pool = urllib3.PoolManager(num_pools=64, maxsize=4, retries=False,
                                        ca_certs=environ.get("LINKMETER_FETCH_CA_FILE") or None)
        self.resolver = dns.resolver.Resolver(configure=False)
        host, _, port = environ.get("LINKMETER_DNS_SERVERS", "127.0.0.1:53").partition(":")
        self.resolver.nameservers = [host]
        self.resolver.port = int(port or 53)
        self.resolver.cache = None
        self._bootstrap: dict[str, list[str]] | None = None
        route_names_to(_port_map(environ.get("LINKMETER_FETCH_PORT_MAP", "")), host)
        self.calls: dict[str, Callable[[dict[str, Any]], tuple[dict[str, Any], int]]] = {
            "dns": self.dns, "dnsbl": self.dnsbl, "rdap": self.rdap, "wayback": self.wayback,
            "hackernews": self.hackernews, "reddit": self.reddit,
        }

    def page(self, url: str) -> tuple[dict[str, Any], int]:
        began = time.perf_counter()
        current, redirects = url, 0
        while True:
            response = self.pool.request("GET", current, redirect=False, preload_content=False,
                                         timeout=TIMEOUTS["page"])
            try:
                body = response.read(PAGE_MAX_BYTES + 1, decode_content=True)
            finally:
                response.release_conn()
            location = response.headers.get("Location")
            if response.status not in REDIRECTS or not location:
                break
            if redirects == MAX_REDIRECTS:
                raise OSError(f"more than {MAX_REDIRECTS} redirects")
            current, redirects = urljoin(current, location), redirects + 1
        headers = CIMultiDictProxy(CIMultiDict(response.headers.items()))
        fetch = PageFetch(url=url, final_url=current, status=response.status, redirects=redirects,
                          headers=headers, body=body[:PAGE_MAX_BYTES], truncated=len(body) > PAGE_MAX_BYTES,
                          elapsed_ms=(time.perf_counter() - began) * 1000)
        return page_signals(fetch), 1 + redirects

    def dns(self, facts: dict[str, Any]) -> tuple[dict[str, Any], int]:
        domain = facts["final_domain"]
        found: dict[str, Any] = {}
        nxdomain = False
        for rdtype in RECORD_TYPES:
            rcode, records = self._query(domain, rdtype)
            nxdomain = nxdomain or rcode == "NXDOMAIN"
            found[f"dns.{rdtype.lower()}_count"] = len(records)
        return ({key: 0 for key in found} if nxdomain else found), len(RECORD_TYPES)

    def dnsbl(self, facts: dict[str, Any]) -> tuple[dict[str, Any], int]:
        domain = facts["final_domain"]
        found: dict[str, Any] = {}
        for name in LISTS:
            rcode, records = self._query(f"{domain}.{DEFAULT_ZONES[name]}", "A")
            categories: list[str] = []
            if rcode == "NXDOMAIN":
                status = CLEAN
            elif not records:
                status = REFUSED
            else:
                verdict = DECODERS[name](records)
                status, categories = verdict.status, list(verdict.categories)
            found[f"dnsbl.{name}"] = status
            found[f"dnsbl.{name}_categories"] = categories
        found["dnsbl.listed_count"] = sum(1 for name in LISTS if found[f"dnsbl.{name}"] == LISTED)
        return found, len(LISTS)

    def rdap(self, facts: dict[str, Any]) -> tuple[dict[str, Any], int]:
        requests = 0
        if self._bootstrap is None:  # once per worker process, as a 2012 module-level cache would
            self._bootstrap = rdap.parse_bootstrap(self._get_json(self.base["rdap"] + "/dns.json", "rdap"))
            requests += 1
        domain = facts["final_domain"]
        service = rdap.select_service(self._bootstrap, domain)
        if service is None:
            raise LookupError(f"no RDAP service for {domain}")
        response = self.pool.request("GET", rdap.join_url(service, f"domain/{domain}"),
                                     headers={"Accept": rdap.RDAP_JSON}, timeout=TIMEOUTS["rdap"])
        requests += 1
        if response.status == 404:
            return rdap.unregistered(), requests
        _raise_for(response.status, "rdap")
        return rdap.parse_domain(response.json(), datetime.now(UTC)), requests

    def wayback(self, facts: dict[str, Any]) -> tuple[dict[str, Any], int]:
        response = self._get(self.base["wayback"] + "/cdx/search/cdx", "wayback",
                             {"url": facts["canonical_url"], "matchType": "exact", "output": "json",
                              "fl": wayback.CDX_FIELDS})
        rows = wayback.parse_json_body(response.data)
        return wayback.summarise(wayback.parse_cdx(rows)), 1

    def hackernews(self, facts: dict[str, Any]) -> tuple[dict[str, Any], int]:
        target = facts["canonical_url"]
        response = self._get(self.base["hackernews"] + "/api/v1/search", "hackernews",
                             {"query": hackernews.search_query(target), "restrictSearchableAttributes": "url",
                              "tags": "story", "hitsPerPage": str(hackernews.HITS_PER_PAGE)})
        return hackernews.summarise(hackernews.matching_hits(response.json(), target)), 1

    def reddit(self, facts: dict[str, Any]) -> tuple[dict[str, Any], int]:
        listings = []
        variants = url_variants(facts["canonical_url"])[:reddit.MAX_VARIANTS]
        for variant in variants:
            response = self._get(self.base["reddit"] + "/api/info.json", "reddit",
                                 {"url": variant, "raw_json": "1"}, {"User-Agent": reddit.USER_AGENT})
            listings.append(response.json())
        return reddit.summarise(reddit.merge_listings(listings)), len(variants)

    def _get(self, url: str, name: str, fields: dict[str, str],
             headers: dict[str, str] | None = None) -> urllib3.BaseHTTPResponse:
        response = self.pool.request("GET", url, fields=fields, headers=headers, timeout=TIMEOUTS[name])
        _raise_for(response.status, name)
        return response

    def _get_json(self, url: str, name: str) -> Any:
        return self._get(url, name, {}).json()

    def _query(self, name: str, rdtype: str) -> tuple[str, tuple[str, ...]]:
        try:
            answer = self.resolver.resolve(name, rdtype, raise_on_no_answer=False, search=False,
                                           lifetime=TIMEOUTS["dns"])
        except dns.resolver.NXDOMAIN:
            return "NXDOMAIN", ()
        records = tuple(rdata.to_text() for rdata in answer.rrset) if answer.rrset is not None else ()
        return "NOERROR", records


def facts_of(url: str, page: dict[str, Any]) -> dict[str, Any]:
    """What round two needs from round one: the final domain and the canonical URL (the URL's own when the
    page could not be fetched)."""
    return {
        "final_domain": page.get("page.final_domain") or registered_domain(host_of(url)),
        "canonical_url": page.get("page.canonical_url") or url,
    }


def cache_key(name: str, url: str, facts: dict[str, Any]) -> str:
    """What identifies a call, as the providers' ``key()``: the domain for DNS and RDAP, else the URL."""
    if name == "page":
        return url
    return str(facts["final_domain"] if name in ("dns", "dnsbl", "rdap") else facts["canonical_url"])


def route_names_to(port_map: dict[int, int], address: str) -> None:
    """Every host name connects to the emulator (ports mapped as LINKMETER_FETCH_PORT_MAP says), as the
    engine's demo resolver does; IP literals (the APIs) connect as they are."""
    original = urllib3_connection.create_connection
    if getattr(original, "_linkmeter_bench", False):
        return

    def create_connection(target: tuple[str, int], *args: Any, **kwargs: Any) -> socket.socket:
        host, port = target
        if not _is_address(host):
            target = (address, port_map.get(port, port))
        return original(target, *args, **kwargs)

    setattr(create_connection, "_linkmeter_bench", True)  # noqa: B010
    setattr(urllib3_connection, "create_connection", create_connection)  # noqa: B010


def _is_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return host == "localhost"
    return True


def _port_map(text: str) -> dict[int, int]:
    pairs = (item.split("=", 1) for item in text.split(",") if "=" in item)
    return {int(source): int(target) for source, target in pairs}


def _raise_for(status: int, name: str) -> None:
    if status >= 400:
        raise OSError(f"{name} answered HTTP {status}")


def timed(function: Callable[[], tuple[dict[str, Any], int]]) -> Answer:
    """Run one call; any failure is an ``error`` answer (a chord header task must never raise)."""
    began = time.perf_counter()
    try:
        signals, requests = function()
    except Exception as exc:  # a failed call is an answer, as in the engine
        return Answer("error", {}, 1, (time.perf_counter() - began) * 1000, f"{type(exc).__name__}: {exc}"[:500])
    return Answer("ok", signals, requests, (time.perf_counter() - began) * 1000)
