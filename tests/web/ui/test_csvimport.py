"""Reading untrusted CSV uploads: encodings, dialects, headers and the URL column."""

from __future__ import annotations

import io

import pytest

from linkmeter.web.ui.csvimport import CsvError, decode, parse, read_upload


def test_a_plain_list_is_one_column_without_header() -> None:
    table = parse("https://a.example.org/1\nhttps://a.example.org/2\n", max_rows=10)
    assert (table.has_header, table.url_column, table.columns) == (False, 0, ["column 1"])
    assert table.values(0) == [(1, "https://a.example.org/1"), (2, "https://a.example.org/2")]


def test_a_plain_list_with_junk_still_uses_its_only_column() -> None:
    table = parse("hello\nworld\n", max_rows=10)
    assert table.url_column == 0 and table.values(0) == [(1, "hello"), (2, "world")]


@pytest.mark.parametrize("delimiter", [",", ";", "\t", "|"])
def test_the_delimiter_is_sniffed(delimiter: str) -> None:
    text = delimiter.join(["id", "Link", "n"]) + "\n" + delimiter.join(["1", "https://a.example.org/?q=1", "2"])
    table = parse(text + "\n", max_rows=10)
    assert table.url_column == 1 and table.values(1) == [(2, "https://a.example.org/?q=1")]


def test_the_header_name_wins_over_the_values() -> None:
    table = parse("source,url\nhttps://x.example.org/,https://a.example.org/1\n", max_rows=10)
    assert table.url_column == 1 and table.has_header


def test_line_numbers_count_quoted_newlines_and_blank_lines() -> None:
    text = 'note,url\n"two\nlines",https://a.example.org/1\n\nz,https://a.example.org/2\n'
    assert parse(text, max_rows=10).values(1) == [(2, "https://a.example.org/1"), (5, "https://a.example.org/2")]


def test_several_url_columns_are_ambiguous() -> None:
    table = parse("https://a.example.org/1,https://b.example.org/1\n", max_rows=10)
    assert table.url_column is None and table.candidates == [0, 1]
    assert table.samples(1) == "https://b.example.org/1"


def test_the_row_cap_does_not_count_the_header() -> None:
    assert len(parse("url\n" + "https://a.example.org/\n" * 3, max_rows=3).rows) == 3
    with pytest.raises(CsvError) as info:
        parse("https://a.example.org/\n" * 4, max_rows=3)
    assert info.value.code == "too_many_rows"


@pytest.mark.parametrize(("data", "code"), [
    (b"", "empty"), (b" \r\n", "empty"), (b"\xef\xbb\xbf", "empty"), (b"ab\x00cd", "binary"),
    (b"\xff\xfe\x00h\x00t", "binary"), (b"caf\xe9", "not_utf8"),
])
def test_undecodable_uploads_are_refused(data: bytes, code: str) -> None:
    with pytest.raises(CsvError) as info:
        decode(data)
    assert info.value.code == code


def test_an_upload_over_the_cap_is_refused_without_reading_it_all() -> None:
    stream = io.BytesIO(b"x" * 10_000)
    with pytest.raises(CsvError, match="larger than the limit of 1000 bytes"):
        read_upload(stream, max_bytes=1000)
    assert stream.tell() == 1001
    assert read_upload(io.BytesIO(b"https://a.example.org/\n"), max_bytes=1000) == "https://a.example.org/\n"


def test_a_malformed_csv_is_a_clear_error() -> None:
    with pytest.raises(CsvError, match="cannot be read at line"):
        parse("url\n" + '"' + "x" * 200_000 + '"\n', max_rows=10)
