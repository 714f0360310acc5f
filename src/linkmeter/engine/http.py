"""The shared HTTP client: one aiohttp session per process, bounded bodies, and upstream errors mapped."""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from datetime import UTC, datetime
from typing import Any

import aiohttp
from multidict import CIMultiDictProxy

from linkmeter.engine.provider import ProviderError

USER_AGENT = "linkmeter/0.1 (+https://github.com/linkmeter/linkmeter)"
DEFAULT_MAX_BODY = 5 * 1024 * 1024


@dataclass(slots=True)
class HttpSettings:
    user_agent: str = USER_AGENT
    max_body: int = DEFAULT_MAX_BODY
    pool_size: int = 0  # 0 = unlimited total connections (per-provider caps live in the engine)
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class HttpResponse:
    status: int
    headers: CIMultiDictProxy[str]
    body: bytes
    url: str

    def json(self) -> Any:
        try:
            return json.loads(self.body)
        except ValueError as exc:
            raise ProviderError(f"invalid JSON from {self.url}: {exc}") from exc

    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")


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


class HttpClient:
    """Wraps the process's one aiohttp session. Use ``async with HttpClient(...)`` or call close()."""

    def __init__(self, settings: HttpSettings | None = None) -> None:
        self.settings = settings or HttpSettings()
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> HttpClient:
        self.session()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(limit=self.settings.pool_size, ttl_dns_cache=60)
            self._session = aiohttp.ClientSession(
                connector=connector,
                headers={"User-Agent": self.settings.user_agent},
                timeout=aiohttp.ClientTimeout(total=None),  # deadlines are the engine's job
                auto_decompress=True,
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
        """One API call. A status outside ``accept`` raises ProviderError (429/5xx retryable)."""
        limit = max_bytes or self.settings.max_body
        try:
            async with self.session().request(
                method, url, params=params, headers=headers, data=data, json=json_body,
                allow_redirects=True, max_redirects=5,
            ) as resp:
                body = await _read_capped(resp, limit)
                if resp.status not in accept:
                    raise error_for_status(resp.status, resp.headers, url, body[:200].decode("utf-8", "replace"))
                return HttpResponse(resp.status, resp.headers, body, str(resp.url))
        except ProviderError:
            raise
        except aiohttp.TooManyRedirects as exc:
            raise ProviderError(f"too many redirects from {url}") from exc
        except (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError) as exc:
            raise ProviderError(f"connection error to {url}: {exc or type(exc).__name__}",
                                retryable=True) from exc
        except aiohttp.ClientError as exc:
            raise ProviderError(f"HTTP error from {url}: {exc}") from exc

    async def fetch_page(self, url: str, *, max_bytes: int | None = None) -> PageFetch:
        """GET a user-supplied URL behind the SSRF guard, following at most 5 re-checked redirects."""
        raise NotImplementedError("the SSRF-guarded page fetch is being written")


async def _read_capped(resp: aiohttp.ClientResponse, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    async for chunk in resp.content.iter_chunked(65536):
        size += len(chunk)
        if size > limit:
            raise ProviderError(f"response from {resp.url} larger than {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


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
