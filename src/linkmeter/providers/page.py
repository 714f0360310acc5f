"""The page provider: fetches the URL behind the SSRF guard and reads status, redirects and HTML facts."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any, ClassVar

from linkmeter.engine.http import PageFetch
from linkmeter.engine.provider import CallContext, Collected, Policy, Provider, Signals, SignalSpec
from linkmeter.engine.urls import InvalidURL, host_of, normalise_url, registered_domain
from linkmeter.providers.htmlmeta import (
    PageMeta,
    canonical_from_link_header,
    decode_html,
    is_html,
    mime_type,
    parse_html,
)

# Parsing is CPU work on the event loop; past this size it moves to a thread so other calls keep going.
THREAD_PARSE_BYTES = 256 * 1024
RAW_HEADERS = ("Content-Type", "Content-Length", "Content-Language", "Link", "Server", "Last-Modified")


class PageProvider(Provider):
    """Content signals (title, words, links, language, canonical link) are only read from 2xx HTML
    answers: an error page's title or canonical link says nothing about the URL asked for. Signals the
    response does not have (no <title>, no Content-Type, not HTML) are left out rather than set to None."""

    name: ClassVar[str] = "page"
    order = 10
    group = "page"
    published_limits = "the sites themselves: no published limit; one page fetch per URL"
    needs: ClassVar[tuple[str, ...]] = ("url",)
    provides: ClassVar[Mapping[str, SignalSpec]] = {
        "page.status": SignalSpec(int, "HTTP status of the final response (after redirects)",
                                  headline="HTTP"),
        "page.final_url": SignalSpec(str, "URL of the final response, normalised"),
        "page.final_domain": SignalSpec(str, "registered domain of the final URL"),
        "page.redirects": SignalSpec(int, "redirects followed", "redirects"),
        "page.canonical_url": SignalSpec(
            str, "canonical URL the page declares if valid (2xx only), else the final URL"),
        "page.has_canonical": SignalSpec(bool, "the page declares a valid http(s) canonical URL"),
        "page.title": SignalSpec(str, "<title>, whitespace collapsed, at most 500 characters",
                                 headline="Title"),
        "page.description": SignalSpec(str, "meta description, else og:description"),
        "page.language": SignalSpec(str, "BCP 47 tag from <html lang>, Content-Language or meta"),
        "page.word_count": SignalSpec(int, "words of visible text (no script/style/noscript/template)",
                                      "words"),
        "page.links_internal": SignalSpec(int, "http(s) links to the final URL's registered domain",
                                          "links"),
        "page.links_external": SignalSpec(int, "http(s) links to other registered domains", "links"),
        "page.links_nofollow": SignalSpec(int, "http(s) links with rel=nofollow", "links"),
        "page.has_open_graph": SignalSpec(bool, "the page has Open Graph (og:*) meta tags"),
        "page.bytes": SignalSpec(int, "body bytes read", "bytes"),
        "page.content_type": SignalSpec(str, "media type of the response, without parameters"),
        "page.response_ms": SignalSpec(float, "time to fetch the page, redirects included", "ms"),
        "page.truncated": SignalSpec(bool, "the body was cut at the size cap"),
    }
    policy = Policy(timeout=15.0, retries=1, cache_ttl=60.0)

    def key(self, signals: Signals) -> str:
        return str(signals["url"])

    async def collect(self, ctx: CallContext, signals: Signals) -> Collected:
        fetch = await ctx.http.fetch_page(str(signals["url"]))
        if len(fetch.body) > THREAD_PARSE_BYTES:
            found = await asyncio.to_thread(page_signals, fetch)
        else:
            found = page_signals(fetch)
        return Collected(signals=found, raw=_raw(fetch))


def page_signals(fetch: PageFetch) -> dict[str, Any]:
    """Every page.* signal one fetch gives; HTML signals only for a 2xx HTML body."""
    final_url = _normalised(fetch.final_url)
    mime = mime_type(fetch.headers.get("Content-Type"))
    found: dict[str, Any] = {
        "page.status": fetch.status,
        "page.final_url": final_url,
        "page.final_domain": registered_domain(host_of(final_url)),
        "page.redirects": fetch.redirects,
        "page.canonical_url": final_url,
        "page.has_canonical": False,
        "page.bytes": len(fetch.body),
        "page.response_ms": round(fetch.elapsed_ms, 1),
        "page.truncated": fetch.truncated,
    }
    if mime:
        found["page.content_type"] = mime
    if not 200 <= fetch.status < 300:
        return found
    canonical = canonical_from_link_header(fetch.headers.get("Link"), final_url)
    if is_html(mime, fetch.body):
        text = decode_html(fetch.body, fetch.headers.get("Content-Type"))
        meta = parse_html(text, final_url, headers=fetch.headers)
        canonical = meta.canonical_url or canonical
        found.update(_html_signals(meta))
    if canonical:
        found["page.canonical_url"] = canonical
        found["page.has_canonical"] = True
    return found


def _html_signals(meta: PageMeta) -> dict[str, Any]:
    found: dict[str, Any] = {
        "page.word_count": meta.word_count,
        "page.links_internal": meta.links_internal,
        "page.links_external": meta.links_external,
        "page.links_nofollow": meta.links_nofollow,
        "page.has_open_graph": meta.has_open_graph,
    }
    for signal, value in (("page.title", meta.title), ("page.description", meta.description),
                          ("page.language", meta.language)):
        if value is not None:
            found[signal] = value
    return found


def _normalised(url: str) -> str:
    try:
        return normalise_url(url)
    except InvalidURL:
        return url


def _raw(fetch: PageFetch) -> dict[str, Any]:
    return {
        "url": fetch.url,
        "final_url": fetch.final_url,
        "status": fetch.status,
        "redirects": fetch.redirects,
        "headers": {name: fetch.headers[name] for name in RAW_HEADERS if name in fetch.headers},
        "bytes": len(fetch.body),
        "truncated": fetch.truncated,
        "elapsed_ms": fetch.elapsed_ms,
    }
