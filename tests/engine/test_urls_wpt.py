"""The URL policy against the URL Standard's own test data (web-platform-tests url/resources/urltestdata.json).

Every case whose input is an absolute http(s) URL either gives the Standard's host and port, or is refused
by one of linkmeter's documented rules (docs/urls.md) with that rule's code; the Standard's failures are
refused; no input of the file makes parse_url raise anything but InvalidURL. linkmeter never resolves a
relative reference (its input is absolute URLs only), so cases whose result depends on their base are only
checked not to crash and to be refused.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from linkmeter.engine.urls import InvalidURL, NormalisedURL, parse_url

DATA = Path(__file__).parent / "data" / "urltestdata.json"

_EDGES = re.compile(r"^[\x00-\x20]+|[\x00-\x20]+$")
_TAB_OR_NEWLINE = re.compile(r"[\t\n\r]")
_HTTP_SCHEME = re.compile(r"https?:", re.IGNORECASE)
# With two slashes (or backslashes) after an http(s) scheme the base plays no part in the result.
_ABSOLUTE_HTTP = re.compile(r"https?:[/\\]{2}", re.IGNORECASE)
_SCHEME_SLASHES_HOST = re.compile(r"https?:[/\\]{2}[^/\\?#]", re.IGNORECASE)
_DNS_LABEL = re.compile(r"[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?")
_IPV4 = re.compile(r"\d{1,3}(\.\d{1,3}){3}")

# Failures in this revision of the data that the current Standard accepts: later revisions of the data
# expect them to parse, and ada follows the current Standard.
STANDARD_CHANGED_SINCE = {
    "http://a.b.c.xn--pokxncvks", "http://10.0.0.xn--pokxncvks", "http://a.b.c.XN--pokxncvks",
    "http://a.b.c.Xn--pokxncvks", "http://10.0.0.XN--pokxncvks", "http://10.0.0.xN--pokxncvks",
}

Case = dict[str, Any]


def _preprocessed(text: str) -> str:
    """The input as the Standard reads it: C0 controls and spaces at both ends stripped, tabs and newlines gone."""
    return _TAB_OR_NEWLINE.sub("", _EDGES.sub("", text))


def _is_dns_name(hostname: str) -> bool:
    host = hostname.removesuffix(".")
    return len(host) <= 253 and all(len(label) <= 63 and _DNS_LABEL.fullmatch(label) for label in host.split("."))


def _is_ip_literal(hostname: str) -> bool:
    return hostname.startswith("[") or bool(_IPV4.fullmatch(hostname))


# linkmeter's documented refusals of URLs the Standard accepts: rule -> (refusal code, does it apply?).
RULES: dict[str, tuple[str, Callable[[Case], bool]]] = {
    "credentials": ("credentials", lambda case: bool(case["username"] or case["password"])),
    "scheme_slashes_host": ("no_host", lambda case: not _SCHEME_SLASHES_HOST.match(_preprocessed(case["input"]))),
    "spaces_or_controls": ("unparseable",
                           lambda case: bool(re.search(r"[\x00-\x20\x7f]",
                                                       _preprocessed(case["input"]).partition("#")[0]))),
    "dns_name": ("unparseable",
                 lambda case: not _is_ip_literal(case["hostname"]) and not _is_dns_name(case["hostname"])),
    "port_zero": ("unparseable", lambda case: case["port"] == "0"),
}


def _cases() -> list[Case]:
    return [case for case in json.loads(DATA.read_text(encoding="utf-8")) if isinstance(case, dict)]


def _applies(case: Case) -> bool:
    """An absolute http(s) input: the Standard's result is what linkmeter, which has no base, must give."""
    text = _preprocessed(case["input"])
    if case.get("base") is None:
        return bool(_HTTP_SCHEME.match(text))
    return bool(_ABSOLUTE_HTTP.match(text))


def _try(text: str) -> NormalisedURL | InvalidURL:
    try:
        return parse_url(text)
    except InvalidURL as exc:
        return exc


def _port(result: NormalisedURL) -> str:
    port = urlsplit(result.url).port
    return "" if port is None else str(port)


def test_no_input_of_the_standard_data_raises_anything_but_invalid_url() -> None:
    for case in _cases():
        _try(case["input"])  # any other exception fails the test


def test_relative_and_non_http_inputs_are_refused_never_resolved_or_guessed() -> None:
    accepted = [case["input"] for case in _cases() if not _applies(case) and not isinstance(_try(case["input"]),
                                                                                             InvalidURL)]
    assert accepted == []


def test_the_standards_failures_are_refused() -> None:
    failures = [case for case in _cases() if _applies(case) and case.get("failure")]
    accepted = [case["input"] for case in failures
                if case["input"] not in STANDARD_CHANGED_SINCE and not isinstance(_try(case["input"]), InvalidURL)]
    assert accepted == []
    assert len(failures) == 202


def test_standard_changed_since_cases_parse_as_the_current_standard_does() -> None:
    for text in STANDARD_CHANGED_SINCE:
        result = _try(text)
        assert isinstance(result, NormalisedURL), text
        assert result.host == text.split("://", 1)[1].lower()


def outcome(case: Case) -> str:
    """"match" when the Standard's host and port come out, else the documented rule that refused the case."""
    result = _try(case["input"])
    if isinstance(result, NormalisedURL):
        assert result.host == case["hostname"].removesuffix("."), case["input"]
        assert _port(result) == case["port"], case["input"]
        return "match"
    rules = [name for name, (code, applies) in RULES.items() if applies(case) and code == result.code]
    assert rules, f"{case['input']!r} refused ({result.code}: {result.message}) by no documented rule"
    return rules[0]


def test_every_absolute_http_case_gives_the_standards_host_and_port_or_a_documented_refusal() -> None:
    successes = [case for case in _cases() if _applies(case) and not case.get("failure")]
    counts = Counter(outcome(case) for case in successes)
    # docs/urls.md quotes these numbers; a new ada or new data that changes them must update the docs too.
    assert counts == {"match": 127, "credentials": 16, "scheme_slashes_host": 12, "spaces_or_controls": 5,
                      "dns_name": 4, "port_zero": 2}


@pytest.mark.parametrize(("raw", "host"), [
    ("http://ex%61mple.com/", "example.com"),
    ("http://0x7f.1/", "127.0.0.1"),
    ("https://%e2%98%83", "xn--n3h"),
    ("http://[0:0:0:0:0:0:13.1.68.3]", "[::d01:4403]"),
])
def test_hosts_come_out_as_the_standard_reads_them(raw: str, host: str) -> None:
    assert parse_url(raw).host == host
