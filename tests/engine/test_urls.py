"""URL normalisation: the documented policy, idempotence, and clear refusals of bad input."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from linkmeter.engine.urls import InvalidURL, normalise_url, parse_url, registered_domain, url_variants

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
    ],
)
def test_bad_urls_are_refused_with_a_code(raw: str, code: str) -> None:
    with pytest.raises(InvalidURL) as info:
        parse_url(raw)
    assert info.value.code == code
    assert info.value.message


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
