"""Pure HTML parsing for the page provider: decoding, title, meta, canonical, language, links, words."""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

from selectolax.lexbor import LexborHTMLParser, LexborNode
from w3lib.encoding import html_to_unicode

from linkmeter.engine.urls import InvalidURL, normalise_url, registered_domain

# Parsing work is bounded: real article pages are under 1.1 MB; anything past this is not read.
MAX_PARSE_BYTES = 2 * 1024 * 1024
MAX_TEXT_LENGTH = 500
HTML_TYPES = frozenset({"text/html", "application/xhtml+xml"})
INVISIBLE_TAGS = ["script", "style", "noscript", "template"]

_SCHEME = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.\-]*):")
_URL_JUNK = re.compile(r"[\t\n\r]")
_SLASHES = re.compile(r"[/\\]{2}")
_AUTHORITY_END = re.compile(r"[/\\?#]")
_WORD_TOKEN = re.compile(r"[^\s\w]*\w\S*")
_LANGUAGE = re.compile(r"^[a-zA-Z]{1,8}(-[a-zA-Z0-9]{1,8})*$")
_LINK_HEADER_CANONICAL = re.compile(r"<([^>]*)>\s*;[^,]*?\brel\s*=\s*\"?(?:[^\",;]*\s)?canonical\b", re.I)


@dataclass(frozen=True, slots=True)
class PageMeta:
    """What one HTML document says about itself. ``canonical_url`` is None unless valid (normalised)."""

    title: str | None
    description: str | None
    language: str | None
    canonical_url: str | None
    word_count: int
    links_total: int
    links_internal: int
    links_external: int
    links_nofollow: int
    has_open_graph: bool


def mime_type(content_type: str | None) -> str:
    """``"text/html; charset=utf-8"`` -> ``"text/html"``; empty when absent."""
    return (content_type or "").split(";", 1)[0].strip().lower()


def is_html(mime: str, body: bytes) -> bool:
    """HTML by declared type; an undeclared type is sniffed from the start of the body."""
    if mime:
        return mime in HTML_TYPES
    head = body[:512].lstrip().lower()
    return head.startswith((b"<!doctype html", b"<html", b"<head", b"<body", b"<title"))


def decode_html(body: bytes, content_type: str | None) -> str:
    """Text of an HTML body: header charset, then BOM, then <meta charset>, then UTF-8 or windows-1252."""
    _, text = html_to_unicode(content_type, body[:MAX_PARSE_BYTES], auto_detect_fun=_guess_encoding)
    return str(text)


def _guess_encoding(body: bytes) -> str:
    try:
        body.decode("utf-8")
    except UnicodeDecodeError as exc:
        # A body cut at the size cap may end inside a character; that alone is no reason to give up UTF-8.
        if exc.start < len(body) - 3:
            return "cp1252"
    return "utf-8"


def clean_text(value: str | None, limit: int = MAX_TEXT_LENGTH) -> str | None:
    """Collapse whitespace, strip, cap the length; None when nothing is left."""
    if not value:
        return None
    text = " ".join(value.split())[:limit].rstrip()
    return text or None


def normalise_language(value: str | None) -> str | None:
    """The first tag of ``value`` in BCP 47 casing (``en_us`` -> ``en-US``); None if it is no tag."""
    if not value:
        return None
    tag = value.split(",", 1)[0].split(";", 1)[0].strip().replace("_", "-")
    if not tag or len(tag) > 35 or not _LANGUAGE.match(tag):
        return None
    parts = tag.split("-")
    out = [parts[0].lower()]
    for part in parts[1:]:
        if len(part) == 2 and part.isalpha():
            out.append(part.upper())
        elif len(part) == 4 and part.isalpha():
            out.append(part.title())
        else:
            out.append(part.lower())
    return "-".join(out)


def canonical_from_link_header(value: str | None, base_url: str) -> str | None:
    """The canonical URL an HTTP ``Link: <url>; rel="canonical"`` header declares (for non-HTML bodies)."""
    if not value:
        return None
    match = _LINK_HEADER_CANONICAL.search(value)
    return _absolute_http_url(match.group(1), base_url) if match else None


def parse_html(text: str, base_url: str, *, headers: Mapping[str, str] | None = None) -> PageMeta:
    """Read the facts of an HTML document fetched from ``base_url`` (the final URL, normalised)."""
    parser = LexborHTMLParser(text)
    base = _document_base(parser, base_url)
    page_domain = registered_domain(_host(base_url))
    meta = _read_meta(parser)
    headers = headers or {}

    title_node = parser.css_first("head title") or parser.css_first("title")
    language = (
        normalise_language(_root_language(parser))
        or normalise_language(headers.get("Content-Language"))
        or normalise_language(meta.get("http-equiv:content-language"))
    )
    canonical = _canonical(parser, base)
    total, internal, external, nofollow = _count_links(parser, base, page_domain)
    # Last: counting words removes the invisible elements from the tree.
    words = _count_words(parser)
    return PageMeta(
        title=clean_text(title_node.text()) if title_node is not None else None,
        description=clean_text(meta.get("name:description")) or clean_text(meta.get("og:description")),
        language=language,
        canonical_url=canonical,
        word_count=words,
        links_total=total,
        links_internal=internal,
        links_external=external,
        links_nofollow=nofollow,
        has_open_graph=any(key.startswith("og:") for key in meta),
    )


def _read_meta(parser: LexborHTMLParser) -> dict[str, str]:
    """``name:<n>``, ``http-equiv:<h>`` and Open Graph ``og:<p>`` keys (lower-case), first value wins."""
    found: dict[str, str] = {}
    for node in parser.css("meta"):
        attrs = node.attributes
        content = attrs.get("content")
        if content is None:
            continue
        keys: list[str] = []
        prop = (attrs.get("property") or "").strip().lower()
        name = (attrs.get("name") or "").strip().lower()
        equiv = (attrs.get("http-equiv") or "").strip().lower()
        # Many sites put Open Graph tags in name= rather than property=.
        for value in (prop, name):
            if value.startswith("og:"):
                keys.append(value)
        if name:
            keys.append(f"name:{name}")
        if equiv:
            keys.append(f"http-equiv:{equiv}")
        for key in keys:
            found.setdefault(key, content)
    return found


def _root_language(parser: LexborHTMLParser) -> str | None:
    root = parser.css_first("html")
    if root is None:
        return None
    attrs = root.attributes
    return attrs.get("lang") or attrs.get("xml:lang")


def _document_base(parser: LexborHTMLParser, base_url: str) -> str:
    node = parser.css_first("base[href]")
    if node is None:
        return base_url
    href = node.attributes.get("href")
    if not href:
        return base_url
    return _absolute_http_url(href, base_url, normalise=False) or base_url


def _canonical(parser: LexborHTMLParser, base: str) -> str | None:
    for node in parser.css("link[rel][href]"):
        attrs = node.attributes
        if "canonical" in (attrs.get("rel") or "").lower().split():
            return _absolute_http_url(attrs.get("href") or "", base)
    return None


def _absolute_http_url(href: str, base: str, *, normalise: bool = True) -> str | None:
    href = _URL_JUNK.sub("", href).strip()
    if not href:
        return None
    try:
        # urljoin would read "https://" (no host) as a reference to the base itself.
        absolute = href if _SCHEME.match(href) else urljoin(base, href)
        if not absolute.lower().startswith(("http://", "https://")):
            return None
        return normalise_url(absolute) if normalise else absolute
    except (InvalidURL, ValueError):
        return None


def _count_links(parser: LexborHTMLParser, base: str, page_domain: str) -> tuple[int, int, int, int]:
    """(anchors with href, internal http(s) links, external http(s) links, nofollow among those)."""
    base_domain = registered_domain(_host(base))
    base_scheme = base.split(":", 1)[0].lower()
    total = internal = external = nofollow = 0
    for node in parser.css("a[href]"):
        total += 1
        attrs = node.attributes
        domain = _link_domain(attrs.get("href") or "", base_scheme, base_domain)
        if domain is None:
            continue
        if domain == page_domain:
            internal += 1
        else:
            external += 1
        if "nofollow" in (attrs.get("rel") or "").lower().split():
            nofollow += 1
    return total, internal, external, nofollow


def _link_domain(href: str, base_scheme: str, base_domain: str) -> str | None:
    """Registered domain an href points to; None for fragments, non-http(s) schemes and garbage.

    Only the host matters, so it is read straight from the href rather than from a resolved URL (the
    page benchmark parses thousands of pages a second and pages carry hundreds of links).
    """
    href = href.strip()
    if "\t" in href or "\n" in href or "\r" in href:
        href = _URL_JUNK.sub("", href)
    if not href or href.startswith("#"):
        return None
    match = _SCHEME.match(href)
    rest = href
    if match is not None:
        scheme = match.group(1).lower()
        if scheme not in ("http", "https"):
            return None
        rest = href[match.end():]
        # WHATWG URL parsing: "http:path" against a base of the same scheme is a relative reference,
        # while against the other scheme whatever follows the slashes is the host.
        if scheme != base_scheme and not _SLASHES.match(rest):
            rest = "//" + rest
    if not _SLASHES.match(rest):
        return base_domain
    authority = _AUTHORITY_END.split(rest.lstrip("/\\"), maxsplit=1)[0].rpartition("@")[2]
    host = authority[1:].partition("]")[0] if authority.startswith("[") else authority.partition(":")[0]
    return _domain_of(host) if host else None


@functools.lru_cache(maxsize=8192)
def _domain_of(host: str) -> str | None:
    host = host.rstrip(".").lower()
    try:
        ascii_host = host.encode("idna").decode("ascii") if not host.isascii() else host
    except UnicodeError:
        return None
    return registered_domain(ascii_host) if ascii_host else None


def _host(url: str) -> str:
    try:
        return urlsplit(url).hostname or ""
    except ValueError:
        return ""


def _count_words(parser: LexborHTMLParser) -> int:
    node: LexborNode | None = parser.body or parser.root
    if node is None:
        return 0
    node.strip_tags(INVISIBLE_TAGS)
    # A word is a whitespace-separated token with at least one letter or digit; one regex pass in C.
    return len(_WORD_TOKEN.findall(node.text(separator=" ")))
