"""The synthetic web: deterministic pages, redirects, short links, errors, odd encodings, hostile markup."""

from __future__ import annotations

import functools
import statistics
import zlib
from urllib.parse import urljoin, urlsplit

import aiohttp
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from selectolax.lexbor import LexborHTMLParser

from linkmeter.emulator.web import SAMPLE_URLS, SyntheticWeb, WebResponse
from linkmeter.emulator.world import World
from linkmeter.engine.urls import registered_domain

REDIRECTS = {301, 302, 303, 307, 308}


@functools.cache
def seed_zero_web() -> SyntheticWeb:
    return SyntheticWeb(World(0))


@pytest.fixture
def synthetic() -> SyntheticWeb:
    return seed_zero_web()


def fetch(web: SyntheticWeb, url: str) -> WebResponse:
    parts = urlsplit(url)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return web.respond(parts.scheme, parts.netloc, target)


def follow(web: SyntheticWeb, url: str, limit: int = 20) -> tuple[str, WebResponse, list[int]]:
    """Follow redirects like a client would: (final URL, final answer, redirect statuses)."""
    statuses: list[int] = []
    answer = fetch(web, url)
    while answer.status in REDIRECTS and len(statuses) < limit:
        statuses.append(answer.status)
        url = urljoin(url, dict(answer.headers)["Location"])
        answer = fetch(web, url)
    return url, answer, statuses


def parse(answer: WebResponse) -> LexborHTMLParser:
    return LexborHTMLParser(answer.body.decode("utf-8"))


def meta(tree: LexborHTMLParser, selector: str, attribute: str) -> str | None:
    node = tree.css_first(selector)
    return node.attributes.get(attribute) if node is not None else None


def article_urls(count: int) -> list[str]:
    hosts = ("news.example.org", "techblog.example", "recipes.example", "www.citynews.example", "forum.example")
    return [f"https://{hosts[i % len(hosts)]}/a/{i}" for i in range(count)]


# -- pages ----------------------------------------------------------------------------------------------


def test_a_page_has_title_description_language_and_canonical(synthetic: SyntheticWeb) -> None:
    answer = fetch(synthetic, "https://news.example.org/a/1")
    assert answer.status == 200
    assert dict(answer.headers)["Content-Type"] == "text/html; charset=utf-8"
    tree = parse(answer)
    title = tree.css_first("title")
    assert title is not None and title.text().strip()
    assert meta(tree, 'meta[name="description"]', "content")
    assert meta(tree, "html", "lang")
    assert meta(tree, 'link[rel="canonical"]', "href") == "https://news.example.org/a/1"
    assert tree.css("a[href]")


def test_pages_vary_like_the_real_web(synthetic: SyntheticWeb) -> None:
    pages = [parse(answer) for answer in (fetch(synthetic, url) for url in article_urls(400))
             if answer.status == 200]
    sizes = [len(fetch(synthetic, url).body) for url in article_urls(400)]
    canonicals = [meta(tree, 'link[rel="canonical"]', "href") for tree in pages]
    langs = {meta(tree, "html", "lang") for tree in pages}
    with_og = [tree.css_first('meta[property="og:title"]') is not None for tree in pages]
    nofollow = [len(tree.css('a[rel~="nofollow"]')) for tree in pages]
    links = [len(tree.css("a[href]")) for tree in pages]
    words = [len(tree.body.text(separator=" ").split()) for tree in pages if tree.body is not None]

    assert None in canonicals  # some pages have no canonical link
    assert any(c and c.startswith("https://") for c in canonicals)
    assert any(c and c.startswith("/") for c in canonicals)  # some are relative
    assert {"en", "fr", "de", None} <= langs
    assert 0.3 < sum(with_og) / len(with_og) < 0.9
    assert any(nofollow) and not all(nofollow)
    assert min(links) < 10 < max(links)
    assert min(words) < 200 < statistics.median(words) < 2000 < max(words)
    assert min(sizes) < 20_000 and max(sizes) > 250_000 and max(sizes) <= 520_000


def test_tracking_parameters_and_index_files_canonicalise_to_the_clean_url(synthetic: SyntheticWeb) -> None:
    for dirty, clean in (
        ("https://shop.example.com/spring/index.html?utm_source=x&utm_medium=email", "https://shop.example.com/spring/"),
        ("https://news.example.org/a/5?utm_campaign=y&id=3&fbclid=abc", "https://news.example.org/a/5?id=3"),
        ("https://techblog.example/blog/index.php", "https://techblog.example/blog/"),
    ):
        dirty_tree = parse(fetch(synthetic, dirty))
        assert meta(dirty_tree, 'link[rel="canonical"]', "href") == clean
        # Same page as the clean URL: only the canonical link may differ.
        clean_tree = parse(fetch(synthetic, clean))
        assert dirty_tree.css_first("title").text() == clean_tree.css_first("title").text()


def test_mobile_and_amp_copies_point_at_the_main_site(synthetic: SyntheticWeb) -> None:
    for url in ("https://m.localpaper.example/a/3", "https://amp.news.example.org/a/3"):
        tree = parse(fetch(synthetic, url))
        href = meta(tree, 'link[rel="canonical"]', "href")
        assert href == url.replace("://m.", "://").replace("://amp.", "://")


def test_spammy_domains_serve_spammy_pages(synthetic: SyntheticWeb) -> None:
    tree = parse(fetch(synthetic, "https://spam-deals.example/offer"))
    external = [a for a in tree.css("a[href]") if registered_domain(urlsplit(a.attributes["href"] or "").hostname
                                                                     or "spam-deals.example") != "spam-deals.example"]
    assert len(external) >= 20
    assert "!!!" in tree.css_first("title").text()


def test_phishing_domains_serve_a_brands_sign_in_form_and_other_pages_none(synthetic: SyntheticWeb) -> None:
    assert synthetic.world.domain("phish-login.example").threat == "phishing"
    tree = parse(fetch(synthetic, "https://phish-login.example/signin"))
    form = tree.css_first("form[method=post]")
    assert form is not None and form.css_first('input[type="password"]') is not None
    assert "account verification" in form.text() and "Sign in" in form.text()

    others = ["https://malware-downloads.example/a", *article_urls(10)]
    assert all(synthetic.world.domain(urlsplit(url).hostname or "").threat != "phishing" for url in others)
    assert all(parse(fetch(synthetic, url)).css_first('input[type="password"]') is None for url in others)


def test_pdf_paths_are_not_html(synthetic: SyntheticWeb) -> None:
    answer = fetch(synthetic, "https://docs.example.com/files/report.pdf")
    assert answer.status == 200
    assert dict(answer.headers)["Content-Type"] == "application/pdf"
    assert answer.body.startswith(b"%PDF")


# -- determinism ----------------------------------------------------------------------------------------


def test_same_seed_same_bytes_different_seed_different_bytes() -> None:
    one, same, other = SyntheticWeb(World(1)), SyntheticWeb(World(1)), SyntheticWeb(World(2))
    for url in [*article_urls(20), "https://lnk.example/abc", "https://spam-deals.example/offer"]:
        assert fetch(one, url) == fetch(same, url)
    differs = [fetch(one, url).body != fetch(other, url).body for url in article_urls(20)]
    assert all(differs)


@settings(max_examples=100, deadline=None)
@given(
    host=st.from_regex(r"\A[a-z][a-z0-9-]{0,20}(\.[a-z][a-z0-9-]{0,20}){1,3}\Z"),
    path=st.from_regex(r"\A(/[A-Za-z0-9._~%!$&'()*+,;=:@-]{0,20}){1,4}(\?[A-Za-z0-9=&_%-]{0,30})?\Z"),
    scheme=st.sampled_from(["http", "https"]),
)
def test_any_name_and_path_gets_a_deterministic_answer(host: str, path: str, scheme: str) -> None:
    web = seed_zero_web()
    answer = web.respond(scheme, host, path)
    assert answer.status in {200, 404} | REDIRECTS
    assert answer == web.respond(scheme, host, path)
    headers = dict(answer.headers)
    assert "Content-Type" in headers
    if answer.status in REDIRECTS:
        assert headers["Location"]


# -- redirects --------------------------------------------------------------------------------------------


def test_plain_http_redirects_to_https_for_every_name(synthetic: SyntheticWeb) -> None:
    for url in ("http://news.example.org/a/1", "http://lnk.example/x", "http://huge.example/",
                "http://x.example/news/a-b?id=4"):
        answer = fetch(synthetic, url)
        assert answer.status == 301
        assert dict(answer.headers)["Location"] == url.replace("http://", "https://", 1)


def test_host_header_port_is_ignored(synthetic: SyntheticWeb) -> None:
    assert synthetic.respond("https", "news.example.org:8443", "/a/1") == fetch(synthetic, "https://news.example.org/a/1")
    assert dict(synthetic.respond("http", "news.example.org:8080", "/a/1").headers)["Location"] == (
        "https://news.example.org/a/1")


@pytest.mark.parametrize("short", ["https://lnk.example/x7Kq2", "https://s.example.net/r/abc123",
                                   "https://short.anything.example/go", "https://lnk.example/another"])
def test_short_links_lead_to_a_page_on_another_domain(synthetic: SyntheticWeb, short: str) -> None:
    first = fetch(synthetic, short)
    assert first.status in (301, 302)
    final, answer, statuses = follow(synthetic, short)
    assert 1 <= len(statuses) <= 4
    assert answer.status in (200, 404)
    assert registered_domain(urlsplit(final).hostname or "") != registered_domain(urlsplit(short).hostname or "")


def test_short_links_use_both_permanent_and_temporary_redirects(synthetic: SyntheticWeb) -> None:
    statuses = {fetch(synthetic, f"https://lnk.example/c{i}").status for i in range(40)}
    assert statuses == {301, 302}


def test_hops_redirect_exactly_k_times(synthetic: SyntheticWeb) -> None:
    for hops in (0, 1, 3, 7):
        final, answer, statuses = follow(synthetic, f"https://hops.example/n/{hops}")
        assert len(statuses) == hops
        assert final == "https://hops.example/n/0"
        assert answer.status == 200
    first = dict(fetch(synthetic, "https://hops.example/n/3").headers)["Location"]
    second = dict(fetch(synthetic, "https://hops.example/n/2").headers)["Location"]
    assert first == "/n/2"  # relative
    assert second == "https://hops.example/n/1"  # absolute


def test_loop_host_never_ends(synthetic: SyntheticWeb) -> None:
    _, answer, statuses = follow(synthetic, "https://loop.example/", limit=30)
    assert len(statuses) == 30
    assert answer.status in REDIRECTS


# -- errors and sizes -------------------------------------------------------------------------------------


def test_missing_paths_are_404_and_a_small_fraction_of_others_too(synthetic: SyntheticWeb) -> None:
    assert fetch(synthetic, "https://news.example.org/missing/page").status == 404
    statuses = [fetch(synthetic, url).status for url in article_urls(1000)]
    assert 0.005 < statuses.count(404) / len(statuses) < 0.05
    assert all(fetch(synthetic, f"https://site{i}.example/").status == 200 for i in range(200))


def test_huge_host_serves_about_8_mb(synthetic: SyntheticWeb) -> None:
    answer = fetch(synthetic, "https://huge.example/anything")
    assert answer.status == 200
    assert 7.5e6 < len(answer.body) < 8.5e6
    assert answer.body.startswith(b"<!DOCTYPE html>") and answer.body.rstrip().endswith(b"</html>")


def test_gzip_bomb_is_small_on_the_wire_and_large_inflated(synthetic: SyntheticWeb) -> None:
    answer = fetch(synthetic, "https://gzip-bomb.example/")
    assert dict(answer.headers)["Content-Encoding"] == "gzip"
    assert len(answer.body) < 1_000_000
    inflated = zlib.decompressobj(31).decompress(answer.body, 6_000_000)
    assert len(inflated) == 6_000_000  # more than any sane body cap, and there is more


# -- encodings and hostile markup ------------------------------------------------------------------------


def test_latin1_page_declares_its_charset_only_in_the_header(synthetic: SyntheticWeb) -> None:
    answer = fetch(synthetic, "https://latin1.example/a/7")
    assert dict(answer.headers)["Content-Type"] == "text/html; charset=ISO-8859-1"
    with pytest.raises(UnicodeDecodeError):
        answer.body.decode("utf-8")
    text = answer.body.decode("latin-1")
    assert "Crème brûlée" in text and "charset" not in text


def test_cp1252_page_declares_its_charset_only_in_a_meta_tag(synthetic: SyntheticWeb) -> None:
    answer = fetch(synthetic, "https://cp1252.example/a/1")
    assert dict(answer.headers)["Content-Type"] == "text/html"
    assert b'<meta charset="windows-1252">' in answer.body
    assert "“" in answer.body.decode("cp1252")


def test_bad_utf8_page_lies_about_its_charset(synthetic: SyntheticWeb) -> None:
    answer = fetch(synthetic, "https://badutf8.example/")
    assert dict(answer.headers)["Content-Type"] == "text/html; charset=utf-8"
    with pytest.raises(UnicodeDecodeError):
        answer.body.decode("utf-8")


def test_page_without_head_has_no_title(synthetic: SyntheticWeb) -> None:
    answer = fetch(synthetic, "https://nohead.example/a/1")
    assert answer.status == 200
    assert b"<head" not in answer.body and b"<title" not in answer.body
    assert parse(answer).css("a[href]")


def test_xss_host_carries_script_payloads_in_parsed_text(synthetic: SyntheticWeb) -> None:
    tree = parse(fetch(synthetic, "https://xss.example.com/a/1"))
    assert "<script>alert(1)</script>" in tree.css_first("title").text()
    assert "<script>" in (meta(tree, 'meta[name="description"]', "content") or "")
    assert "<script>" in (meta(tree, "html", "lang") or "")
    assert meta(tree, 'link[rel="canonical"]', "href") == "javascript:alert(3)"
    assert any((a.attributes.get("href") or "").startswith("javascript:") for a in tree.css("a"))


# -- samples -------------------------------------------------------------------------------------------


def test_sample_urls_cover_the_demo_cases_and_all_end_on_a_page(synthetic: SyntheticWeb) -> None:
    assert 10 <= len(SAMPLE_URLS) <= 14
    assert "https://news.example.org/a/1" in SAMPLE_URLS
    hosts = {urlsplit(url).hostname for url in SAMPLE_URLS}
    assert {"lnk.example", "xss.example.com", "spam-deals.example"} <= hosts
    assert any(url.startswith("http://") for url in SAMPLE_URLS)
    assert any("utm_" in url for url in SAMPLE_URLS)
    for url in SAMPLE_URLS:
        _, answer, _ = follow(synthetic, url)
        assert answer.status == 200, url


# -- over the wire --------------------------------------------------------------------------------------


async def test_pages_over_the_emulator_match_respond(web_session: aiohttp.ClientSession) -> None:
    async with web_session.get("https://lnk.example/x7Kq2") as resp:
        assert resp.status == 200
        assert resp.history and resp.history[0].status in (301, 302)
        body = await resp.read()
    expected = SyntheticWeb(World(0))
    assert body == follow(expected, "https://lnk.example/x7Kq2")[1].body
    async with web_session.head("https://news.example.org/a/1") as resp:
        assert resp.status == 200
        assert await resp.read() == b""
