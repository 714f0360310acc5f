"""URL normalisation: the documented policy, idempotence, and clear refusals of bad input."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from linkmeter.engine.ssrf import FetchRefused
from linkmeter.engine.urls import InvalidURL, host_of, normalise_url, parse_url, registered_domain, url_variants
from tests.engine.conftest import MakeClient
from tests.engine.test_ssrf import LOOPBACK_SPELLINGS

labels = st.from_regex(r"[a-zA-Z0-9]([a-zA-Z0-9-]{0,10}[a-zA-Z0-9])?", fullmatch=True)
hosts = st.lists(labels, min_size=1, max_size=3).map(lambda ls: ".".join([*ls, "com"]))
path_chars = st.sampled_from([*"abcXYZ019-._~!$&'()*+,;=:@/%", "%41", "%7e", "%2F", "..", "."])
paths = st.lists(path_chars, max_size=12).map(lambda parts: "/" + "".join(parts))
queries = st.one_of(st.just(""), st.from_regex(r"\?[a-z0-9=&%]{0,20}", fullmatch=True))
fragments = st.one_of(st.just(""), st.from_regex(r"#[a-z0-9]{0,8}", fullmatch=True))
ports = st.one_of(st.just(""), st.sampled_from([":80", ":443", ":8080", ":1"]))
schemes = st.sampled_from(["http", "https", "HTTP", "HtTpS"])


def _try(url: str) -> str | None:
    try:
        return normalise_url(url)
    except InvalidURL:
        return None


@settings(max_examples=400, deadline=None)
@given(schemes, hosts, ports, paths, queries, fragments)
def test_normalisation_is_idempotent(scheme: str, host: str, port: str, path: str, query: str,
                                     fragment: str) -> None:
    once = _try(f"{scheme}://{host}{port}{path}{query}{fragment}")
    if once is not None:
        assert normalise_url(once) == once


@settings(max_examples=200, deadline=None)
@given(schemes, hosts, paths, queries)
def test_host_case_default_ports_and_fragments_do_not_matter(scheme: str, host: str, path: str,
                                                             query: str) -> None:
    base = _try(f"{scheme}://{host}{path}{query}")
    if base is None:
        return
    default_port = ":443" if scheme.lower() == "https" else ":80"
    assert normalise_url(f"{scheme}://{host.upper()}{path}{query}") == base
    assert normalise_url(f"{scheme}://{host}{default_port}{path}{query}") == base
    assert normalise_url(f"{scheme}://{host}{path}{query}#section-2") == base


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("HTTP://Example.COM:80/a/../b/./c?x=1#frag", "http://example.com/b/c?x=1"),
        ("https://example.com", "https://example.com/"),
        ("https://example.com:8443/x", "https://example.com:8443/x"),
        ("https://EXAMPLE.com./path", "https://example.com/path"),
        ("https://bücher.de/straße", "https://xn--bcher-kva.de/stra%C3%9Fe"),
        ("https://example.com/%7euser", "https://example.com/~user"),
        ("https://example.com/a?b=2&a=1", "https://example.com/a?b=2&a=1"),
        ("  https://example.com/padded  ", "https://example.com/padded"),
        ("http://[::1]:8080/x", "http://[::1]:8080/x"),
        ("http://[::FFFF:127.0.0.1]/", "http://[::ffff:7f00:1]/"),
        # As a browser reads them: the host it visits is the one analysed.
        ("http://ex%61mple.com/", "http://example.com/"),
        ("http://0x7f.1/", "http://127.0.0.1/"),
        ("http://2130706433/", "http://127.0.0.1/"),
        ("http://%31%32%37.0.0.1/", "http://127.0.0.1/"),
        ("https://\uff25\uff38\uff21\uff2d\uff30\uff2c\uff25.com/", "https://example.com/"),
        ("https://fa\u00df.de/", "https://xn--fa-hia.de/"),
        ("https://exa\tmple.com/a\nb\r", "https://example.com/ab"),
        ("https:\\\\example.com\\a\\b", "https://example.com/a/b"),
        ("http://@example.com/", "http://example.com/"),
        ("https://example.com/%2e%2E/a/%2e/b", "https://example.com/a/b"),
        ("https://example.com/%7e%3a?q=%7E%2f&r=%41", "https://example.com/~%3A?q=~%2F&r=A"),
        ("https://example.com/a'b?c'd", "https://example.com/a'b?c%27d"),
        ("https://example.com/a#b c", "https://example.com/a"),
        ("\x00\x1b https://example.com/x \u00a0\r", "https://example.com/x"),
        ("https://example.com:0443/", "https://example.com/"),
    ],
)
def test_documented_policy(raw: str, expected: str) -> None:
    assert normalise_url(raw) == expected


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        ("", "empty"),
        ("example.com/page", "no_scheme"),
        ("ftp://example.com/file", "unsupported_scheme"),
        ("javascript://alert(1)", "unsupported_scheme"),
        ("https://user:pw@example.com/", "credentials"),
        ("https://exa mple.com/", "unparseable"),
        ("https:///nohost", "no_host"),
        ("https://example.com:99999/", "unparseable"),
        ("https://" + "a" * 2100 + ".com/", "too_long"),
        ("https://bad..label.com/", "unparseable"),
        ("http://256.256.256.256/", "unparseable"),
        ("http://1.2.3.4.5/", "unparseable"),
        ("http://999999999999/", "unparseable"),
        ("https://a{b}.com/", "unparseable"),
        ("https://example.com:0/", "unparseable"),
        ("https://example.com/a b", "unparseable"),
        ("https://example.com/a\x00b", "unparseable"),
        ("http:example.com/", "no_host"),
        ("https:/example.com/", "no_host"),
        ("https://", "no_host"),
        ("https://?q=1", "no_host"),
        ("example.com:8080/page", "no_scheme"),
        ("localhost:8080", "no_scheme"),
        ("//example.com/page", "no_scheme"),
        ("mailto:someone@example.com", "unsupported_scheme"),
        ("javascript:alert(1)", "unsupported_scheme"),
        ("https://user@example.com/", "credentials"),
        ("https://www.example.com@evil.example/", "credentials"),
        ("https://example.com/" + "a" * 2000 + "\u00e9" * 10, "too_long"),
        # Two URLs in one item: removing the line break, as the Standard does, would make one wrong URL.
        ("https://a.example/\nhttps://b.example/", "several_urls"),
        ("https://a.example/x\r\n  http://b.example/", "several_urls"),
    ],
)
def test_bad_urls_are_refused_with_a_code(raw: str, code: str) -> None:
    with pytest.raises(InvalidURL) as info:
        parse_url(raw)
    assert info.value.code == code
    assert info.value.message


@pytest.mark.parametrize(("raw", "expected"), [
    ("http://0.com/%%41a", "http://0.com/%%41a"),  # decoding %41 would make "%Aa", a new escape
    ("http://0.com/%4%41", "http://0.com/%4%41"),  # ... or "%4A"
    ("http://0.com/%%34%41", "http://0.com/%%34A"),
])
def test_decoding_an_escape_never_makes_a_new_one(raw: str, expected: str) -> None:
    assert normalise_url(raw) == expected
    assert normalise_url(expected) == expected


def test_a_line_break_inside_one_url_is_removed_as_the_standard_does() -> None:
    assert normalise_url("https://exa\nmple.com/a\r\n/b") == "https://example.com/a/b"


def test_the_registered_domain_of_an_ip_host_is_the_ip() -> None:
    assert parse_url("http://0x7f.1/").domain == "127.0.0.1"
    assert parse_url("http://[::1]/").domain == "::1"
    assert parse_url("http://ex%61mple.com/").domain == "example.com"


def test_host_of_reads_the_host_as_the_standard_does() -> None:
    assert host_of("http://ex%61mple.com./x") == "example.com"
    assert host_of("https://Blog.Example.CO.UK/x?y") == "blog.example.co.uk"
    assert host_of("not a url") == ""


@pytest.mark.parametrize("host", LOOPBACK_SPELLINGS)
async def test_every_loopback_spelling_stays_refused_at_connect_time_once_normalised(
    host: str, make_client: MakeClient
) -> None:
    url = normalise_url(f"http://{host}:8080/secret")
    with pytest.raises(FetchRefused) as info:
        await make_client().fetch_page(url)
    assert info.value.code == "blocked_address"


pieces = st.sampled_from([*"aZ09.:/\\?#@[]%-_~ \t\x00\x7f", "%2e", "%41", "%2F", "0x", "xn--", "\u00e9", "\u3002",
                          "\uff0e", "\u200b", "::", "127", "http://", "https:"])
url_like = st.tuples(st.sampled_from(["", "http://", "https://", "HTTP:\\\\", "https:/"]),
                     st.lists(pieces, max_size=24).map("".join)).map("".join)


@settings(max_examples=1000, deadline=None)
@given(url_like)
def test_any_input_is_either_refused_with_a_code_or_normalised_for_good(text: str) -> None:
    try:
        once = normalise_url(text)
    except InvalidURL as exc:
        assert exc.code and exc.message
        return
    assert normalise_url(once) == once


def test_registered_domain_uses_the_public_suffix_list() -> None:
    assert registered_domain("news.bbc.co.uk") == "bbc.co.uk"
    assert registered_domain("a.b.example.org") == "example.org"
    assert registered_domain("user.github.io") == "user.github.io"  # a private-section suffix
    assert registered_domain("127.0.0.1") == "127.0.0.1"
    assert parse_url("https://Blog.Example.CO.UK/x").domain == "example.co.uk"


def test_url_variants_cover_scheme_and_trailing_slash() -> None:
    assert url_variants("https://example.org/a/1") == [
        "https://example.org/a/1", "https://example.org/a/1/", "http://example.org/a/1", "http://example.org/a/1/",
    ]
    assert url_variants("http://example.org/?q=1") == ["http://example.org/?q=1", "https://example.org/?q=1"]
