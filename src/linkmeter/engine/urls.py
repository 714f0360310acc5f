"""URL validation and normalisation (WHATWG URL parsing plus linkmeter's policy), and the registered domain.

URLs are parsed as a browser parses them, by ada (the WHATWG URL Standard parser inside Node.js): hosts are
percent-decoded and IDNA-mapped, IPv4 number forms become dotted quads, invalid hosts are refused, tabs and
newlines are removed and backslashes read as slashes. linkmeter's policy sits on top (docs/urls.md lists every
rule and every deviation from the Standard):
- only absolute ``http``/``https`` URLs of the form ``scheme://host...`` are accepted; no credentials;
- spaces and control characters inside the URL (outside the fragment) are refused;
- host names must be DNS names (no empty or over-long labels), lose a trailing dot, port 0 is refused;
- the fragment is dropped; the default port is dropped;
- percent-encoding in path and query is made canonical (upper-case hex, unreserved characters decoded);
- at most ``max_length`` characters, before and after normalisation.
Normalising a normalised URL returns it unchanged.
"""

from __future__ import annotations

import functools
import ipaddress
import re
from dataclasses import dataclass

import ada_url
from publicsuffixlist import PublicSuffixList

MAX_URL_LENGTH = 2048
ALLOWED_SCHEMES = frozenset({"http", "https"})
DEFAULT_PORTS = {"http": 80, "https": 443}

# Leading and trailing junk: what the Standard strips (C0 controls and space) plus any Unicode whitespace,
# which pasted lists carry (e.g. a no-break space after the URL).
_EDGE_JUNK = "".join(sorted({chr(code) for code in range(0x21)} | {chr(code) for code in range(0x3001)
                                                                     if chr(code).isspace()}))
_TAB_OR_NEWLINE = re.compile(r"[\t\n\r]")
# A line break followed by another scheme: two URLs in one item (an API list item holding a pasted list), which
# removing the line break as the Standard does would silently turn into one wrong URL.
_SECOND_URL = re.compile(r"://.*?[\n\r]\s*[A-Za-z][A-Za-z0-9+.-]*://", re.DOTALL)
_FORBIDDEN_CHARACTERS = re.compile(r"[\x00-\x20\x7f]")
_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*):")
_SLASHES = ("//", "\\\\", "/\\", "\\/")
_AUTHORITY_END = re.compile(r"[/\\?]")
_DNS_LABEL = re.compile(r"[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?")
_ESCAPE = re.compile(r"%([0-9A-Fa-f]{2})")
_HEX = frozenset("0123456789ABCDEFabcdef")
_UNRESERVED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
_ADA_ATTRIBUTES = ("hostname", "host_type", "port", "pathname", "search", "username", "password")


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
    """Parse ``raw`` as the WHATWG URL Standard does, apply linkmeter's policy, or raise InvalidURL."""
    text = raw.strip(_EDGE_JUNK)
    if not text:
        raise InvalidURL("empty", "empty URL")
    if len(text) > max_length:
        raise InvalidURL("too_long", f"URL longer than {max_length} characters")
    if "\t" in text or "\n" in text or "\r" in text:
        if _SECOND_URL.search(text):
            raise InvalidURL("several_urls", "more than one URL, separated by a line break: give one URL per item")
        text = _TAB_OR_NEWLINE.sub("", text)
    # The first "#" always starts the fragment of an http(s) URL; it never reaches the server.
    text = text.partition("#")[0]
    if _FORBIDDEN_CHARACTERS.search(text):
        raise InvalidURL("unparseable", "URL contains spaces or control characters")
    scheme = _scheme_of(text)
    _require_authority(text, scheme)
    try:
        parts = ada_url.parse_url(text, _ADA_ATTRIBUTES)
    except ValueError as exc:
        raise InvalidURL("unparseable", "URL cannot be parsed (invalid host, port or characters)") from exc
    if parts["username"] or parts["password"]:
        raise InvalidURL("credentials", "URLs with credentials (user:password@) are refused")
    host = _host_policy(parts["hostname"], parts["host_type"])
    port = parts["port"]
    if port == "0":
        raise InvalidURL("unparseable", "invalid port 0")
    final = f"{scheme}://{host}{':' + port if port else ''}{_canonical_escapes(parts['pathname'])}"
    if parts["search"]:
        final += _canonical_escapes(parts["search"])
    if len(final) > max_length:
        raise InvalidURL("too_long", f"URL longer than {max_length} characters once normalised")
    return NormalisedURL(url=final, host=host, domain=registered_domain(host))


def _scheme_of(text: str) -> str:
    match = _SCHEME.match(text)
    scheme = match[1].lower() if match else ""
    if scheme in ALLOWED_SCHEMES:
        return scheme
    # "example.com:8080/x" and "localhost:8080" read as schemes to the Standard, but are host names and
    # ports given without a scheme: say so rather than "unsupported scheme 'example.com'".
    if match is None or "." in scheme or text[match.end():match.end() + 1].isdigit():
        raise InvalidURL("no_scheme", "URL has no scheme (expected http:// or https://)")
    raise InvalidURL("unsupported_scheme", f"unsupported scheme {match[1]!r} (only http and https)")


def _require_authority(text: str, scheme: str) -> None:
    """``scheme://`` must be followed by the host: no "http:example.com", no "https:///example.com"."""
    rest = text[len(scheme) + 1:]
    if rest[:2] not in _SLASHES:
        raise InvalidURL("no_host", f"URL has no host (expected {scheme}:// followed by a host)")
    if not _AUTHORITY_END.split(rest[2:], maxsplit=1)[0]:
        raise InvalidURL("no_host", "URL has no host")


@functools.lru_cache(maxsize=65536)
def _host_policy(hostname: str, host_type: int) -> str:
    """The host as linkmeter keeps it: IP literals as the Standard serialises them, DNS names checked."""
    if host_type != ada_url.HostType.DEFAULT:
        return hostname
    host = hostname.removesuffix(".")
    labels = host.split(".")
    if len(host) > 253 or any(len(label) > 63 or not _DNS_LABEL.fullmatch(label) for label in labels):
        raise InvalidURL("unparseable", f"invalid host name {hostname!r} (not a DNS name)")
    return host


def _canonical_escapes(text: str) -> str:
    """Percent-escapes in upper-case hex; escaped unreserved characters (RFC 3986 2.3) decoded, except where
    the decoded character would join a lone ``%`` before it into a new escape (``%%41a`` is not ``%Aa``)."""
    if "%" not in text:
        return text
    out: list[str] = []
    position = 0
    for match in _ESCAPE.finditer(text):
        out.append(text[position:match.start()])
        position = match.end()
        char = chr(int(match[1], 16))
        before = "".join(out[-2:])[-2:]
        joins = char in _HEX and (before.endswith("%") or (len(before) == 2 and before[0] == "%"
                                                            and before[1] in _HEX))
        out.append(char if char in _UNRESERVED and not joins else "%" + match[1].upper())
    out.append(text[position:])
    return "".join(out)


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
    """The host of ``url`` as the Standard reads it (trailing dot dropped); "" when it has none."""
    try:
        parts = ada_url.parse_url(url, ("hostname",))
    except ValueError:
        return ""
    return parts["hostname"].removesuffix(".")


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
