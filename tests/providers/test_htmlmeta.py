"""HTML parsing for the page provider: 40 real article pages, then synthetic edge cases."""

from __future__ import annotations

import gzip
import re
from pathlib import Path

import pytest

from linkmeter.providers.htmlmeta import (
    MAX_TEXT_LENGTH,
    PageMeta,
    canonical_from_link_header,
    clean_text,
    decode_html,
    is_html,
    mime_type,
    normalise_language,
    parse_html,
)

# shared/ sits beside the repository (in CI too): ../shared/data/real-pages from the repository root.
REAL_PAGES = Path(__file__).resolve().parents[3] / "shared" / "data" / "real-pages"
PAGE_FILES = sorted(REAL_PAGES.glob("*.html.gz"))
UNKNOWN_BASE = "https://unknown.invalid/"


def load(prefix: str) -> str:
    (path,) = [p for p in PAGE_FILES if p.name.startswith(prefix)]
    return decode_html(gzip.decompress(path.read_bytes()), None)


def parse_real(text: str) -> PageMeta:
    """The pages' URLs are not kept (file names are hashes), so their canonical link stands in for it."""
    first = parse_html(text, UNKNOWN_BASE)
    return parse_html(text, first.canonical_url or UNKNOWN_BASE)


def page(body: str, base: str = "https://www.example.com/dir/page.html", **headers: str) -> PageMeta:
    return parse_html(body, base, headers=headers)


def test_the_real_page_set_is_there() -> None:
    assert len(PAGE_FILES) == 40


@pytest.mark.parametrize("path", PAGE_FILES, ids=lambda p: p.name[:8])
def test_every_real_page_parses_with_consistent_facts(path: Path) -> None:
    text = decode_html(gzip.decompress(path.read_bytes()), None)
    meta = parse_real(text)
    title_tag = re.search(r"<title[^>]*>(.*?)</title>", text, re.I | re.S)
    if title_tag and title_tag.group(1).strip():
        assert meta.title
        assert "\n" not in meta.title and meta.title == meta.title.strip()
        assert len(meta.title) <= MAX_TEXT_LENGTH
    # Article pages: hundreds to a few thousand words, not the size of their markup.
    assert 100 < meta.word_count < 20_000
    assert meta.word_count < len(text) / 5
    assert meta.links_total > 0
    assert 0 <= meta.links_internal + meta.links_external <= meta.links_total
    assert meta.links_nofollow <= meta.links_internal + meta.links_external
    if meta.canonical_url is not None:
        assert meta.canonical_url.startswith(("http://", "https://"))
    if meta.language is not None:
        assert re.fullmatch(r"[a-z]{2,3}(-[A-Za-z0-9]+)*", meta.language)


def test_real_page_cbs_news_title_whitespace_is_collapsed() -> None:
    meta = parse_real(load("2c46804d"))
    assert meta.title == ("Michael Webb: Dramatic video shows rescue of 8-year-old kidnapping victim in Fort Worth"
                          " hotel - CBS News")
    assert meta.language == "en-US"
    assert meta.canonical_url == ("https://www.cbsnews.com/news/michael-webb-fort-worth-dramatic-video-shows-rescue-"
                                  "of-8-year-old-kidnapping-victim/")
    assert meta.description == ("Michael Webb allegedly admitted to threatening the girl, and hiding the girl from "
                                "law enforcement in a small laundry basket")
    assert meta.has_open_graph
    assert meta.links_total == 188  # every <a href> in the markup (checked with grep)


def test_real_page_morebikes_entity_in_title_and_meta_description_wins_over_og() -> None:
    meta = parse_real(load("30b771a4"))
    assert meta.title == "Bike & Style book with soundtrack review | MoreBikes"
    assert meta.language == "en-GB"
    assert meta.canonical_url == "https://www.morebikes.co.uk/7908/bike-style-book-soundtrack-review/"
    assert meta.description is not None
    assert meta.description.startswith("morebikes.co.uk features the latest bike reviews")
    assert meta.links_total == 118


def test_real_page_korean_without_canonical_and_commented_out_links() -> None:
    meta = parse_real(load("0ec95c72"))
    assert meta.title == "엘제이-류화영 진흙탕 싸움, 공적인 사안으로 봐야하는 이유 - Entermedia"
    assert meta.language == "ko"
    assert meta.canonical_url is None
    # 99 "<a href" strings in the markup, but half sit inside an HTML comment: not links.
    assert meta.links_total == 49
    assert meta.description is not None and meta.description.startswith("엘제이-류화영 진흙탕 싸움")


def test_real_page_without_meta_description_falls_back_to_og_description() -> None:
    meta = parse_real(load("14cc2a0c"))
    assert meta.title == "NASA Just Confirmed There Are Water Plumes Above The Surface of Jupiter's Moon Europa"
    assert meta.language == "en-GB"
    assert meta.description is not None
    assert meta.description.startswith("A team led by researchers out of NASA's Goddard Space Flight Center")


def test_real_page_russian_counts_nofollow_links() -> None:
    meta = parse_real(load("3c6d3381"))
    assert meta.language == "ru"
    assert meta.title is not None and meta.title.startswith("Самые популярные кулинарные блоги")
    assert meta.links_nofollow == 25
    assert meta.links_total == 125


def test_latin1_body_is_decoded_with_the_header_charset() -> None:
    body = "<html><head><title>Café crème à Zürich</title></head><body>Très bien</body></html>".encode("latin-1")
    text = decode_html(body, "text/html; charset=ISO-8859-1")
    assert page(text).title == "Café crème à Zürich"


def test_meta_charset_is_used_when_the_header_has_none() -> None:
    body = '<html><head><meta charset="windows-1251"><title>Привет</title></head></html>'.encode("cp1251")
    assert page(decode_html(body, "text/html")).title == "Привет"


def test_undeclared_bad_utf8_falls_back_to_windows_1252() -> None:
    body = "<title>naïve “quotes”</title>".encode("cp1252")
    assert page(decode_html(body, None)).title == "naïve “quotes”"


def test_utf8_cut_inside_a_character_stays_utf8() -> None:
    body = "<title>日本語のページ</title><p>".encode() + "テキスト".encode()[:-1]
    assert page(decode_html(body, None)).title == "日本語のページ"


def test_bom_wins_over_nothing() -> None:
    body = "<title>λόγος</title>".encode("utf-16")
    assert page(decode_html(body, None)).title == "λόγος"


def test_document_without_head_or_html_tags() -> None:
    meta = page("<title>Bare</title><p>one two three</p><a href='/x'>four</a>")
    assert meta.title == "Bare"
    assert meta.word_count == 4
    assert meta.links_internal == 1


def test_empty_document() -> None:
    meta = page("")
    assert meta == PageMeta(None, None, None, None, 0, 0, 0, 0, 0, False)


def test_title_entities_whitespace_and_length_cap() -> None:
    meta = page("<title>\n  Tom &amp; Jerry&nbsp;&#8211;\t&lt;best&gt;   of  </title>")
    assert meta.title == "Tom & Jerry \u2013 <best> of"
    long = page(f"<title>{'word ' * 400}</title>")
    assert long.title is not None and len(long.title) <= MAX_TEXT_LENGTH
    assert page("<title>   </title>").title is None


def test_svg_title_in_body_is_not_the_page_title() -> None:
    meta = page("<html><head><title>Real</title></head><body><svg><title>icon</title></svg></body></html>")
    assert meta.title == "Real"


def test_words_exclude_script_style_noscript_template_and_punctuation() -> None:
    meta = page("""<html><head><title>Not counted</title><style>p { color: red }</style></head><body>
        <p>Hello,   world &mdash; this is <b>five</b></p>
        <script>var a = "not words at all";</script><noscript>enable javascript please</noscript>
        <template><p>template words</p></template> — | ...
        </body></html>""")
    assert meta.word_count == 5


def test_links_internal_external_and_non_http() -> None:
    meta = page("""<body>
        <a href="/about">relative root</a>
        <a href="other.html">relative path</a>
        <a href="?page=2">query</a>
        <a href="https://blog.example.com/post">subdomain is internal</a>
        <a href="//cdn.example.net/x">protocol-relative external</a>
        <a href="https://www.other.org/">external</a>
        <a href="HTTP://WWW.OTHER.ORG">external, upper case</a>
        <a href="#top">fragment: not a link to elsewhere</a>
        <a href="mailto:me@example.com">mail</a>
        <a href="javascript:void(0)">script</a>
        <a href="tel:+123">phone</a>
        <a href="">empty</a>
        <a>no href</a>
        </body>""")
    assert meta.links_total == 12
    assert meta.links_internal == 4
    assert meta.links_external == 3


def test_links_are_classified_by_registered_domain_of_the_final_url() -> None:
    body = '<a href="/a">x</a><a href="https://news.example.co.uk/b">y</a><a href="https://example.com/">z</a>'
    meta = page(body, base="https://www.example.co.uk/")
    assert (meta.links_internal, meta.links_external) == (2, 1)


def test_base_href_changes_where_relative_links_point() -> None:
    meta = page('<head><base href="https://static.elsewhere.net/"></head><a href="x.html">x</a>')
    assert (meta.links_internal, meta.links_external) == (0, 1)


@pytest.mark.parametrize(("rel", "counted"), [
    ("nofollow", True),
    ("nofollow ugc", True),
    ("ugc NoFollow", True),
    ("noopener noreferrer", False),
    ("sponsored", False),
    ("nofollowing", False),
])
def test_nofollow_variants(rel: str, counted: bool) -> None:
    meta = page(f'<a href="https://x.org/" rel="{rel}">x</a><a href="/in">y</a>')
    assert meta.links_nofollow == (1 if counted else 0)


def test_nofollow_on_non_http_links_is_not_counted() -> None:
    assert page('<a href="mailto:a@b.org" rel="nofollow">m</a>').links_nofollow == 0


def test_canonical_relative_is_resolved_and_normalised() -> None:
    meta = page('<link rel="canonical" href="../Other%7ePage#frag">', base="https://Example.com:443/a/b/c")
    assert meta.canonical_url == "https://example.com/a/Other~Page"


@pytest.mark.parametrize("href", ["javascript:alert(1)", "ftp://example.com/x", "https://", "   ",
                                  "http://user:pw@example.com/"])
def test_invalid_canonical_is_ignored(href: str) -> None:
    assert page(f'<link rel="canonical" href="{href}">').canonical_url is None


def test_canonical_rel_token_case_insensitive_and_first_wins() -> None:
    meta = page('<link rel="Canonical" href="https://a.example/1"><link rel="canonical" href="https://a.example/2">')
    assert meta.canonical_url == "https://a.example/1"


def test_canonical_from_link_header() -> None:
    header = '<https://cdn.example.com/doc.pdf>; rel="preload", </papers/doc.pdf>; rel="canonical"'
    assert canonical_from_link_header(header, "https://cdn.example.com/x") == "https://cdn.example.com/papers/doc.pdf"
    assert canonical_from_link_header('<https://a.example/>; rel="next"', "https://a.example/") is None
    assert canonical_from_link_header(None, "https://a.example/") is None


def test_description_meta_wins_then_og_then_none() -> None:
    both = page('<meta property="og:description" content="og"><meta NAME="Description" content=" The  desc ">')
    assert both.description == "The desc"
    assert page('<meta property="og:description" content="from og">').description == "from og"
    assert page('<meta name="description" content="">').description is None


def test_open_graph_detected_in_property_or_name() -> None:
    assert page('<meta property="og:title" content="x">').has_open_graph
    assert page('<meta name="og:image" content="x">').has_open_graph
    assert not page('<meta name="twitter:card" content="x">').has_open_graph


def test_language_sources_in_order() -> None:
    assert page('<html lang="en_us"><meta http-equiv="content-language" content="de">').language == "en-US"
    assert page("<html><title>t</title>", **{"Content-Language": "fr-ca, en"}).language == "fr-CA"
    assert page('<meta http-equiv="Content-Language" content="nl">').language == "nl"
    assert page('<html lang="not a language!">').language is None
    assert page('<html xml:lang="pt-br">').language == "pt-BR"


def test_normalise_language() -> None:
    assert normalise_language("zh-hant-tw") == "zh-Hant-TW"
    assert normalise_language("") is None
    assert normalise_language("x" * 40) is None


def test_clean_text() -> None:
    assert clean_text("  a \n\t b  ") == "a b"
    assert clean_text(None) is None
    assert clean_text("abc def", limit=5) == "abc d"


def test_mime_type_and_html_sniffing() -> None:
    assert mime_type("Text/HTML; charset=UTF-8") == "text/html"
    assert mime_type(None) == ""
    assert is_html("application/xhtml+xml", b"")
    assert not is_html("application/pdf", b"<html>")
    assert is_html("", b"  <!DOCTYPE html><html>")
    assert not is_html("", b"%PDF-1.7")


def test_huge_page_parsing_is_capped() -> None:
    body = ("<html><body>" + "<p>word</p>" * 400_000 + "</body></html>").encode()
    text = decode_html(body, "text/html")
    assert len(text) <= 2 * 1024 * 1024
    assert 0 < page(text).word_count < 400_000
