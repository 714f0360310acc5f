"""The shared HTTP client: one aiohttp session per process, the SSRF guard, bounded bodies, mapped errors."""

from __future__ import annotations

import json
import ssl
import time
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, Literal

import aiohttp
import orjson
from multidict import CIMultiDictProxy
from yarl import URL

from linkmeter.engine.bodies import read_body
from linkmeter.engine.dns import DnsClient
from linkmeter.engine.errors import FetchRefused, ProviderError
from linkmeter.engine.ssrf import (
    AddressLookup,
    AllowList,
    GuardedResolver,
    blocked_reason,
    dns_lookup,
    host_address,
    refused_address,
    system_lookup,
)

USER_AGENT = "linkmeter/0.1 (+https://github.com/linkmeter/linkmeter)"
DEFAULT_MAX_BODY = 5 * 1024 * 1024
DNS_CACHE_SECONDS = 30
DEFAULT_MAX_REDIRECTS = 5
# Only the encodings _Decoder handles, so a server never sends one we would have to pass through undecoded.
ACCEPT_ENCODING = "gzip, deflate"
PAGE_ACCEPT = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"

_HOST_VERDICTS = 4096  # hosts whose guard verdict is kept (then the memo starts over)
_REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
_HTTP_SCHEMES = frozenset({"http", "https"})
# Headers kept when a redirect leaves the origin: anything else (API keys, auth, cookies) stays behind.
_CROSS_ORIGIN_HEADERS = frozenset({"accept", "accept-language", "user-agent"})


@dataclass(slots=True)
class HttpSettings:
    """How the shared client behaves (from the environment: ``engine.settings.http_settings``). ``port_map`` and
    ``ca_pem`` are demo-only substitutes."""

    user_agent: str = USER_AGENT
    max_body: int = DEFAULT_MAX_BODY
    pool_size: int = 0  # 0 = unlimited total connections (per-provider caps live in the engine)
    max_redirects: int = DEFAULT_MAX_REDIRECTS
    allow: list[str] = field(default_factory=list)
    dns_servers: list[tuple[str, int]] | None = None
    port_map: dict[int, int] = field(default_factory=dict)
    ca_pem: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class HttpResponse:
    status: int
    headers: CIMultiDictProxy[str]
    body: bytes
    url: str

    def json(self) -> Any:
        try:
            return orjson.loads(self.body)
        except orjson.JSONDecodeError:
            pass  # what orjson refuses and the standard parser may take (NaN, integers over 64 bits) or explain
        try:
            return json.loads(self.body)
        except ValueError as exc:
            raise ProviderError(f"invalid JSON from {self.url}: {exc}") from exc

    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")


@dataclass(frozen=True, slots=True)
class PageFetch:
    """The outcome of a guarded page fetch (see HttpClient.fetch_page)."""

    url: str
    final_url: str
    status: int
    redirects: int
    headers: CIMultiDictProxy[str]
    body: bytes
    truncated: bool
    elapsed_ms: float


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait from a Retry-After header: delta-seconds or an HTTP date; None if absent/invalid."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def error_for_status(status: int, headers: Mapping[str, str], url: str, snippet: str = "") -> ProviderError:
    retry_after = parse_retry_after(headers.get("Retry-After"))
    detail = f": {snippet[:200]}" if snippet else ""
    if status == 429:
        return ProviderError(f"HTTP 429 rate limited by {url}{detail}", retryable=True,
                             retry_after=retry_after, status=status, rate_limited=True)
    if status >= 500:
        return ProviderError(f"HTTP {status} from {url}{detail}", retryable=True,
                             retry_after=retry_after, status=status)
    return ProviderError(f"HTTP {status} from {url}{detail}", retryable=False, status=status)



def _ssl_setting(ca_pem: str | None) -> ssl.SSLContext | bool:
    if ca_pem is None:
        return True
    context = ssl.create_default_context()
    try:
        context.load_verify_locations(cadata=ca_pem)
    except (ssl.SSLError, ValueError) as exc:
        raise ValueError(f"ca_pem is not a usable PEM CA certificate: {exc}") from exc
    return context


def _same_origin(a: URL, b: URL) -> bool:
    return (a.scheme, a.host, a.port) == (b.scheme, b.host, b.port)


def _redirect_target(base: URL, location: str) -> URL:
    try:
        given = URL(location.strip())
        target = base.join(given)
    except (ValueError, TypeError) as exc:
        raise FetchRefused("bad_redirect", f"unparseable redirect Location {location!r} from {base}") from exc
    # join() would quietly read "http://" or "http:path" as relative; with a scheme there must be a host.
    if (given.scheme and not given.host) or target.scheme not in _HTTP_SCHEMES or not target.host:
        raise FetchRefused("bad_redirect",
                           f"refused redirect from {base} to {location!r}: not an http(s) URL")
    return target


def _as_provider_error(exc: Exception, url: str) -> Exception:
    """The ProviderError to raise for an aiohttp failure (connection trouble is retryable, TLS failures are
    not); any other exception comes back unchanged."""
    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        return ProviderError(
            f"TLS certificate of {exc.host} not trusted ({exc.certificate_error}); fetching {url}", retryable=False)
    if isinstance(exc, aiohttp.ClientSSLError):
        return ProviderError(f"TLS handshake with {exc.host} failed: {exc}; fetching {url}", retryable=False)
    if isinstance(exc, aiohttp.InvalidURL):
        return FetchRefused("bad_url", f"invalid URL {url}: {exc}")
    if isinstance(exc, (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError)):
        return ProviderError(f"connection error to {url}: {exc or type(exc).__name__}", retryable=True)
    if isinstance(exc, aiohttp.ClientError):
        return ProviderError(f"HTTP error from {url}: {exc}")
    return exc


class HttpClient:
    """Wraps the process's one aiohttp session. Use ``async with HttpClient(...)`` or call close().

    Every request goes through the SSRF guard: IP-literal hosts are checked before sending, names are
    checked by GuardedResolver inside the connector, and each redirect hop is checked again.
    ``lookup`` replaces name resolution (tests); by default it is the system resolver, or DNS queries to
    ``settings.dns_servers`` when set.
    """

    def __init__(self, settings: HttpSettings | None = None, *, lookup: AddressLookup | None = None) -> None:
        self.settings = settings or HttpSettings()
        self._allow = AllowList.parse(self.settings.allow)
        if lookup is None:
            servers = self.settings.dns_servers
            lookup = dns_lookup(DnsClient(servers)) if servers else system_lookup
        self._resolver = GuardedResolver(lookup, self._allow, self.settings.port_map)
        self._ssl = _ssl_setting(self.settings.ca_pem)
        self._session: aiohttp.ClientSession | None = None
        self._host_verdicts: dict[str, Literal[True] | str | FetchRefused] = {}

    async def __aenter__(self) -> HttpClient:
        self.session()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(
                # The resolver returns only checked addresses, so caching its answers briefly is as safe as
                # asking again (and saves two DNS round trips per new connection).
                limit=self.settings.pool_size, resolver=self._resolver, use_dns_cache=True,
                ttl_dns_cache=DNS_CACHE_SECONDS, ssl=self._ssl,
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                headers={"User-Agent": self.settings.user_agent, "Accept-Encoding": ACCEPT_ENCODING},
                timeout=aiohttp.ClientTimeout(total=None),  # deadlines are the engine's job
                auto_decompress=False,  # _read_body decodes, bounded
                cookie_jar=aiohttp.DummyCookieJar(),  # one user's page must not set cookies for the next
                trust_env=False,  # a proxy from the environment would bypass the guard
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None and not self._session.closed:
            await self._session.close()

    async def request(
        self,
        method: str,
        url: str,
        *,
        params: Mapping[str, str] | list[tuple[str, str]] | None = None,
        headers: Mapping[str, str] | None = None,
        data: Mapping[str, str] | bytes | None = None,
        json_body: Any = None,
        accept: Collection[int] = (200,),
        max_bytes: int | None = None,
    ) -> HttpResponse:
        """One API call. A status outside ``accept`` raises ProviderError (429/5xx retryable); a body over
        ``max_bytes`` (after decoding) raises ProviderError."""
        limit = max_bytes or self.settings.max_body
        # Plain try/finally rather than context managers: this is every provider call's path, and each
        # generator-based context manager adds a frame that every resumption of the call passes through.
        try:
            resp, _ = await self._send(method, url, params=params, headers=headers, data=data, json_body=json_body)
            try:
                body, truncated = await read_body(resp, limit)
            finally:
                resp.release()
        except ProviderError:
            raise
        except Exception as exc:
            mapped = _as_provider_error(exc, url)
            if mapped is exc:
                raise
            raise mapped from exc
        if resp.status not in accept:
            raise error_for_status(resp.status, resp.headers, str(resp.url), body[:200].decode("utf-8", "replace"))
        if truncated:
            raise ProviderError(f"response from {resp.url} larger than {limit} bytes")
        return HttpResponse(resp.status, resp.headers, body, str(resp.url))

    async def fetch_page(self, url: str, *, max_bytes: int | None = None) -> PageFetch:
        """GET a user-supplied URL behind the SSRF guard, following at most ``max_redirects`` re-checked
        redirects. Any status is a result; a body over ``max_bytes`` is cut and marked ``truncated``."""
        limit = max_bytes or self.settings.max_body
        started = time.perf_counter()
        # request()'s block again rather than a shared coroutine, which would add a frame to every resumption
        # of every call (one such helper measured 0.72 against 0.68 ms CPU per call over four noisy pairs).
        try:
            resp, redirects = await self._send("GET", url, headers={"Accept": PAGE_ACCEPT})
            try:
                body, truncated = await read_body(resp, limit)
            finally:
                resp.release()
        except ProviderError:
            raise
        except Exception as exc:
            mapped = _as_provider_error(exc, url)
            if mapped is exc:
                raise
            raise mapped from exc
        return PageFetch(
            url=url, final_url=str(resp.url), status=resp.status, redirects=redirects,
            headers=resp.headers, body=body, truncated=truncated,
            elapsed_ms=(time.perf_counter() - started) * 1000.0,
        )

    def check_url(self, url: URL) -> URL:
        """Refuse a non-http(s) URL or a blocked IP-literal host; numeric IPv4 spellings come back canonical.

        Host names are checked later, by the resolver, against the addresses actually dialled.
        """
        if url.scheme not in _HTTP_SCHEMES or not url.host:
            raise FetchRefused("bad_url", f"refused {url}: only http(s) URLs with a host are fetched")
        host = url.host
        verdict = self._host_verdicts.get(host)
        if verdict is None:
            verdict = self._host_verdict(host)
            if len(self._host_verdicts) >= _HOST_VERDICTS:
                self._host_verdicts.clear()
            self._host_verdicts[host] = verdict
        if isinstance(verdict, FetchRefused):
            raise FetchRefused(verdict.code, verdict.message)
        return url.with_host(verdict) if isinstance(verdict, str) else url

    def _host_verdict(self, host: str) -> Literal[True] | str | FetchRefused:
        """For one host: True (fetch as is: a name, or an allowed canonical IP), the canonical spelling of
        an allowed IPv4 literal, or the refusal. Pure for a given host and allow-list, so it is kept."""
        try:
            ip = host_address(host)
        except FetchRefused as exc:
            return exc
        if ip is None:
            return True
        reason = blocked_reason(ip)
        if reason is not None and not self._allow.allows_address(ip):
            return refused_address(host, ip, reason, literal=True)
        if ip.version == 4 and host != str(ip):
            return str(ip)
        return True

    async def _send(
        self,
        method: str,
        url: str,
        *,
        params: Mapping[str, str] | list[tuple[str, str]] | None = None,
        headers: Mapping[str, str] | None = None,
        data: Mapping[str, str] | bytes | None = None,
        json_body: Any = None,
    ) -> tuple[aiohttp.ClientResponse, int]:
        """Send, following redirects by hand so each hop is checked. Returns the last response (the caller
        releases it) and the number of redirects followed."""
        try:
            current = URL(url)
        except (ValueError, TypeError) as exc:
            raise FetchRefused("bad_url", f"cannot parse URL {url!r}: {exc}") from exc
        send_headers = {k: v for k, v in (headers or {}).items() if k.lower() != "accept-encoding"}
        session = self.session()
        redirects = 0
        while True:
            target = self.check_url(current)
            resp = await session.request(
                method, target, params=params, headers=send_headers, data=data, json=json_body,
                allow_redirects=False,
            )
            location = resp.headers.get("Location") if resp.status in _REDIRECT_STATUSES else None
            if location is None:
                return resp, redirects
            try:
                if redirects >= self.settings.max_redirects:
                    raise FetchRefused(
                        "too_many_redirects",
                        f"more than {self.settings.max_redirects} redirects fetching {url}, last {resp.url}",
                    )
                following = _redirect_target(resp.url, location)
                status, origin = resp.status, resp.url
            finally:
                resp.release()
            redirects += 1
            params = None
            if (status == 303 and method != "HEAD") or (status in (301, 302) and method == "POST"):
                method, data, json_body = "GET", None, None
                send_headers = {k: v for k, v in send_headers.items() if k.lower() != "content-type"}
            if not _same_origin(origin, following):
                send_headers = {k: v for k, v in send_headers.items() if k.lower() in _CROSS_ORIGIN_HEADERS}
            current = following
