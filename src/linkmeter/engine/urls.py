"""URL validation and normalisation, and the registered domain from the offline public suffix list.

The normalisation policy (documented in docs/urls.md):
- only absolute ``http`` and ``https`` URLs with a host are accepted; credentials in the URL are refused;
- scheme and host are lower-cased, the host is IDNA-encoded and loses a trailing dot;
- the default port (80 for http, 443 for https) is dropped; other ports are kept;
- the fragment is dropped (it never reaches the server);
- an empty path becomes ``/``; dot segments are resolved; percent-encoding is made canonical
  (upper-case hex, unreserved characters decoded);
- the query string is kept as given, order included (it can change what the page is).
Normalising a normalised URL returns it unchanged.
"""

from __future__ import annotations

import functools
import ipaddress
import re
from dataclasses import dataclass

from publicsuffixlist import PublicSuffixList
from yarl import URL

MAX_URL_LENGTH = 2048
_FORBIDDEN_CHARACTERS = re.compile(r"[\x00-\x20\x7f]")
ALLOWED_SCHEMES = frozenset({"http", "https"})
DEFAULT_PORTS = {"http": 80, "https": 443}


class InvalidURL(ValueError):
    """A URL that linkmeter will not analyse, with a short machine-readable code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True, slots=True)
class NormalisedURL:
    url: str
    host: str
    domain: str


def normalise_url(raw: str, *, max_length: int = MAX_URL_LENGTH) -> str:
    """Return the canonical form of ``raw`` or raise InvalidURL."""
    return parse_url(raw, max_length=max_length).url


def parse_url(raw: str, *, max_length: int = MAX_URL_LENGTH) -> NormalisedURL:
    text = raw.strip()
    if not text:
        raise InvalidURL("empty", "empty URL")
    if len(text) > max_length:
        raise InvalidURL("too_long", f"URL longer than {max_length} characters")
    if _FORBIDDEN_CHARACTERS.search(text):
        raise InvalidURL("unparseable", "URL contains spaces or control characters")
    if "://" not in text:
        raise InvalidURL("no_scheme", "URL has no scheme (expected http:// or https://)")
    try:
        url = URL(text)
    except (ValueError, TypeError, UnicodeError) as exc:
        raise InvalidURL("unparseable", f"URL cannot be parsed: {exc}") from exc
    scheme = (url.scheme or "").lower()
    if scheme not in ALLOWED_SCHEMES:
        raise InvalidURL("unsupported_scheme", f"unsupported scheme {url.scheme!r} (only http and https)")
    if url.user is not None or url.password is not None:
        raise InvalidURL("credentials", "URLs with credentials (user:password@) are refused")
    try:
        host = _normalise_host(url.raw_host or "")
        port = url.explicit_port
    except (ValueError, UnicodeError) as exc:
        raise InvalidURL("unparseable", f"invalid host or port: {exc}") from exc
    if not host:
        raise InvalidURL("no_host", "URL has no host")
    if port is not None and not 0 < port < 65536:
        raise InvalidURL("unparseable", f"invalid port {port}")
    if port == DEFAULT_PORTS[scheme]:
        port = None
    path = url.raw_path or "/"
    try:
        built = URL.build(
            scheme=scheme,
            host=host,
            port=port,
            path=_canonical_path(path),
            query_string=url.raw_query_string,
            encoded=True,
        )
        # A second pass through yarl's own parser settles percent-encoding canonically.
        final = str(URL(str(built)))
    except (ValueError, TypeError, UnicodeError) as exc:
        raise InvalidURL("unparseable", f"URL cannot be parsed: {exc}") from exc
    if len(final) > max_length:
        raise InvalidURL("too_long", f"URL longer than {max_length} characters once normalised")
    return NormalisedURL(url=final, host=host, domain=registered_domain(host))


@functools.lru_cache(maxsize=65536)
def _normalise_host(raw_host: str) -> str:
    host = raw_host.strip().rstrip(".").lower()
    if not host:
        return ""
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        pass
    else:
        return f"[{ip.compressed}]" if ip.version == 6 else ip.compressed
    if not host.isascii():
        host = host.encode("idna").decode("ascii")
    labels = host.split(".")
    if any(not label or len(label) > 63 for label in labels) or len(host) > 253:
        raise ValueError(f"invalid host name {raw_host!r}")
    return host


def _canonical_path(raw_path: str) -> str:
    segments: list[str] = []
    parts = raw_path.split("/")
    for index, segment in enumerate(parts[1:] if raw_path.startswith("/") else parts):
        last = index == len(parts) - 2
        if segment == ".":
            if last:
                segments.append("")
            continue
        if segment == "..":
            if segments:
                segments.pop()
            if last:
                segments.append("")
            continue
        segments.append(segment)
    return "/" + "/".join(segments)


@functools.cache
def _psl() -> PublicSuffixList:
    return PublicSuffixList()


@functools.lru_cache(maxsize=65536)
def registered_domain(host: str) -> str:
    """The registrable domain (eTLD+1) of ``host``; an IP literal or a bare suffix is returned as is."""
    bare = host.strip("[]").rstrip(".").lower()
    try:
        ipaddress.ip_address(bare)
    except ValueError:
        pass
    else:
        return bare
    private = _psl().privatesuffix(bare)
    return private if private else bare


def host_of(url: str) -> str:
    return (URL(url).raw_host or "").lower()


def url_variants(url: str) -> list[str]:
    """The http/https and trailing-slash variants of a URL, the given form first, without duplicates."""
    _, rest = url.split("://", 1)
    location, sep, query = rest.partition("?")
    host, slash, path = location.partition("/")
    path = slash + path
    if path in ("", "/"):
        paths = ["/", ""] if not query else ["/"]
    else:
        paths = [path, path[:-1] if path.endswith("/") else path + "/"]
    variants: list[str] = [url]
    for scheme in ("https", "http"):
        for variant_path in paths:
            text = f"{scheme}://{host}{variant_path}{sep}{query}"
            if text not in variants:
                variants.append(text)
    return variants
