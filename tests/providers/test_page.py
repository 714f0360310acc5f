"""The page provider, fed PageFetch results by a fake HTTP client (the guarded fetch is tested elsewhere)."""

from __future__ import annotations

from typing import Any

import pytest
from multidict import CIMultiDict, CIMultiDictProxy

from linkmeter.engine.dns import DnsClient
from linkmeter.engine.http import PageFetch
from linkmeter.engine.provider import CallContext, ProviderConfig, ProviderError
from linkmeter.providers.page import THREAD_PARSE_BYTES, PageProvider

ARTICLE = """<!doctype html><html lang="en"><head>
<title>  A  fine   article </title>
<meta name="description" content="What it is about">
<meta property="og:title" content="A fine article">
<link rel="canonical" href="/articles/1">
</head><body><h1>Headline here</h1><p>Four words of text.</p>
<a href="/next">next</a> <a href="https://other.org/" rel="nofollow ugc">elsewhere</a>
<a href="https://www.short.example/x">old domain</a>
</body></html>"""

HTML_SIGNALS = {"page.title", "page.description", "page.language", "page.word_count", "page.links_internal",
                "page.links_external", "page.links_nofollow", "page.has_open_graph"}


class FakeHttp:
    """Stands in for HttpClient: fetch_page returns a prepared PageFetch (or raises) and records calls."""

    def __init__(self, result: PageFetch | ProviderError) -> None:
        self.result = result
        self.calls: list[str] = []

    async def fetch_page(self, url: str, *, max_bytes: int | None = None) -> PageFetch:
        self.calls.append(url)
        if isinstance(self.result, ProviderError):
            raise self.result
        return self.result


def fetch(body: bytes | str, *, url: str = "https://www.short.example/x", final_url: str | None = None,
          status: int = 200, redirects: int = 0, truncated: bool = False, elapsed_ms: float = 12.34,
          **headers: str) -> PageFetch:
    named = {key.replace("_", "-"): value for key, value in headers.items()}
    named.setdefault("Content-Type", "text/html; charset=utf-8")
    raw = body.encode() if isinstance(body, str) else body
    return PageFetch(url=url, final_url=final_url or url, status=status, redirects=redirects,
                     headers=CIMultiDictProxy(CIMultiDict(named)), body=raw, truncated=truncated,
                     elapsed_ms=elapsed_ms)


async def collect(result: PageFetch | ProviderError, url: str = "https://www.short.example/x") -> dict[str, Any]:
    http = FakeHttp(result)
    ctx = CallContext(http=http, dns=DnsClient([("127.0.0.1", 9)]), config=ProviderConfig(base_url=""))  # type: ignore[arg-type]
    collected = await PageProvider().collect(ctx, {"url": url, "host": "www.short.example", "domain": "short.example"})
    assert http.calls == [url]
    assert isinstance(result, PageFetch) and collected.raw["status"] == result.status
    return collected.signals


def test_declares_the_documented_signals() -> None:
    assert PageProvider.name == "page"
    assert PageProvider.needs == ("url",)
    assert set(PageProvider.provides) == HTML_SIGNALS | {
        "page.status", "page.final_url", "page.final_domain", "page.redirects", "page.canonical_url",
        "page.has_canonical", "page.bytes", "page.content_type", "page.response_ms", "page.truncated"}
    assert PageProvider.policy.timeout == 15
    assert PageProvider.policy.retries == 1
    assert PageProvider().key({"url": "https://a.example/"}) == "https://a.example/"


async def test_html_page_after_redirects() -> None:
    result = fetch(ARTICLE, final_url="https://News.Example.com:443/story?id=1", redirects=2, truncated=False)
    signals = await collect(result)
    assert signals == {
        "page.status": 200,
        "page.final_url": "https://news.example.com/story?id=1",
        "page.final_domain": "example.com",
        "page.redirects": 2,
        "page.canonical_url": "https://news.example.com/articles/1",
        "page.has_canonical": True,
        "page.title": "A fine article",
        "page.description": "What it is about",
        "page.language": "en",
        "page.word_count": 10,
        # internal/external by the final domain (example.com), not by the submitted short.example
        "page.links_internal": 1,
        "page.links_external": 2,
        "page.links_nofollow": 1,
        "page.has_open_graph": True,
        "page.bytes": len(ARTICLE.encode()),
        "page.content_type": "text/html",
        "page.response_ms": 12.3,
        "page.truncated": False,
    }


async def test_error_status_is_a_result_without_content_signals() -> None:
    body = '<html><title>Not Found</title><link rel="canonical" href="https://www.short.example/"></html>'
    signals = await collect(fetch(body, status=404))
    assert signals["page.status"] == 404
    assert signals["page.canonical_url"] == "https://www.short.example/x"
    assert signals["page.has_canonical"] is False
    assert signals["page.bytes"] == len(body)
    assert not HTML_SIGNALS & set(signals)


async def test_server_error_status_is_reported_too() -> None:
    signals = await collect(fetch("oops", status=503, Content_Type="text/plain"))
    assert signals["page.status"] == 503
    assert signals["page.content_type"] == "text/plain"


async def test_non_html_content_has_no_html_signals_but_a_link_header_canonical() -> None:
    result = fetch(b"%PDF-1.7 ...", url="https://docs.example.org/a.pdf", Content_Type="application/pdf",
                   Link='<https://docs.example.org/papers/a.pdf>; rel="canonical"')
    signals = await collect(result, url="https://docs.example.org/a.pdf")
    assert signals["page.content_type"] == "application/pdf"
    assert signals["page.bytes"] == 12
    assert signals["page.canonical_url"] == "https://docs.example.org/papers/a.pdf"
    assert signals["page.has_canonical"] is True
    assert not HTML_SIGNALS & set(signals)


async def test_html_canonical_wins_over_link_header() -> None:
    body = '<link rel="canonical" href="https://www.short.example/from-html">'
    signals = await collect(fetch(body, Link='<https://www.short.example/from-header>; rel="canonical"'))
    assert signals["page.canonical_url"] == "https://www.short.example/from-html"


async def test_invalid_canonical_falls_back_to_the_final_url() -> None:
    signals = await collect(fetch('<link rel="canonical" href="javascript:void(0)"><title>t</title>'))
    assert signals["page.canonical_url"] == "https://www.short.example/x"
    assert signals["page.has_canonical"] is False
    assert signals["page.title"] == "t"


async def test_latin1_page_with_header_charset() -> None:
    body = "<title>Résumé</title><p>déjà vu</p>".encode("latin-1")
    signals = await collect(fetch(body, Content_Type="text/html; charset=iso-8859-1"))
    assert signals["page.title"] == "Résumé"
    assert signals["page.word_count"] == 2


async def test_missing_content_type_is_sniffed() -> None:
    url = "https://www.short.example/x"
    result = PageFetch(url=url, final_url=url, status=200, redirects=0, headers=CIMultiDictProxy(CIMultiDict()),
                       body=b"<!DOCTYPE html><title>Sniffed</title>", truncated=False, elapsed_ms=1.0)
    signals = await collect(result)
    assert signals["page.title"] == "Sniffed"
    assert "page.content_type" not in signals


async def test_page_without_title_has_no_title_signal() -> None:
    signals = await collect(fetch("<p>just text</p>"))
    assert "page.title" not in signals
    assert signals["page.word_count"] == 2


async def test_truncated_large_page_is_parsed_off_the_loop() -> None:
    body = "<title>Big</title>" + "<p>lorem ipsum</p>" * (THREAD_PARSE_BYTES // 10)
    signals = await collect(fetch(body, truncated=True))
    assert signals["page.truncated"] is True
    assert signals["page.title"] == "Big"
    assert signals["page.word_count"] == 2 * (THREAD_PARSE_BYTES // 10)


async def test_fetch_failures_propagate() -> None:
    with pytest.raises(ProviderError) as caught:
        await collect(ProviderError("blocked address 10.0.0.1", retryable=False))
    assert caught.value.retryable is False
