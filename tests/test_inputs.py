"""Reading URL lists: comments and blanks skipped, duplicates collapsed, bad lines reported by line number."""

from __future__ import annotations

from linkmeter.inputs import numbered_lines, read_urls


def test_blank_lines_and_comments_are_ignored_but_still_counted_for_line_numbers() -> None:
    lines = ["# my links\n", "\n", "   \n", "https://news.example.org/a/1\n", "  # indented comment\n",
             "not-a-url\n"]
    result = read_urls(numbered_lines(lines))
    assert result.urls == ["https://news.example.org/a/1"]
    assert [(line.source, line.text) for line in result.invalid] == [("line 6", "not-a-url")]


def test_urls_are_normalised_and_kept_in_input_order() -> None:
    lines = ["https://b.example/x\n", "HTTPS://A.Example:443/y#section\r\n", "http://c.example\n"]
    result = read_urls(numbered_lines(lines))
    assert result.urls == ["https://b.example/x", "https://a.example/y", "http://c.example/"]


def test_duplicates_after_normalisation_collapse_to_the_first_and_are_counted() -> None:
    lines = ["https://a.example/x\n", "https://A.EXAMPLE/x#top\n", "https://b.example/\n",
             "https://a.example:443/x\n"]
    result = read_urls(numbered_lines(lines))
    assert result.urls == ["https://a.example/x", "https://b.example/"]
    assert result.duplicates == 2
    assert result.invalid == []


def test_each_invalid_line_is_reported_with_its_number_code_and_reason() -> None:
    lines = ["https://ok.example/\n", "example.com/no-scheme\n", "", "ftp://x/\n", "https://exa mple.com/\n",
             "https://[::1/\n"]
    result = read_urls(numbered_lines(lines))
    assert result.urls == ["https://ok.example/"]
    by_line = {line.source: line for line in result.invalid}
    assert set(by_line) == {"line 2", "line 4", "line 5", "line 6"}
    assert by_line["line 2"].code == "no_scheme" and "no scheme" in by_line["line 2"].message
    assert by_line["line 4"].code == "unsupported_scheme" and "'ftp'" in by_line["line 4"].message
    assert by_line["line 5"].code == "unparseable"
    assert by_line["line 6"].code == "unparseable"
    assert by_line["line 2"].as_dict() == {"where": "line 2", "input": "example.com/no-scheme",
                                           "code": "no_scheme", "message": by_line["line 2"].message}


def test_too_long_lines_are_refused_and_shown_shortened() -> None:
    long_url = "https://long.example/" + "a" * 3000
    result = read_urls(numbered_lines([long_url]), max_length=2048)
    assert result.urls == []
    [line] = result.invalid
    assert line.code == "too_long"
    assert len(line.text) == 120 and line.text.endswith("...") and line.text.startswith("https://long.example/")


def test_a_byte_order_mark_does_not_spoil_the_first_url() -> None:
    result = read_urls(numbered_lines(["\ufeffhttps://news.example.org/a/1\n", "https://b.example/\n"]))
    assert result.invalid == []
    assert result.urls == ["https://news.example.org/a/1", "https://b.example/"]


def test_arguments_and_stdin_are_labelled_by_their_source() -> None:
    items = [*numbered_lines(["https://a.example/", "nope"], "argument"),
             *numbered_lines(["also nope\n"], "stdin line")]
    result = read_urls(items)
    assert [line.source for line in result.invalid] == ["argument 2", "stdin line 1"]
