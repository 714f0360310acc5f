"""The home form: pasted lists and CSV uploads, per-line errors, caps with clear messages, never a 500."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from pytest_django.fixtures import Settings as SettingsWrapper

from linkmeter.providers.registry import DEFAULT_NAMES, PROVIDER_NAMES
from linkmeter.web.links.models import Analysis, Batch

pytestmark = pytest.mark.django_db

DEFAULT = list(DEFAULT_NAMES)  # what the form checks to begin with


def post(client: Client, **fields: Any) -> Any:
    return client.post("/", {"providers": DEFAULT, **fields})


def upload(client: Client, content: bytes, name: str = "links.csv", **fields: Any) -> Any:
    return post(client, csv_file=SimpleUploadedFile(name, content, content_type="text/csv"), **fields)


def submitted_urls(batch: Batch) -> list[str]:
    return [item.analysis.link.url for item in batch.items.select_related("analysis__link").order_by("position")]


def test_a_paste_with_bad_lines_accepts_the_rest_and_lists_each_bad_line(client: Client) -> None:
    text = "https://a.example.org/1\n\nnot a url\n  https://a.example.org/2  \nftp://files.example.org/x\n"
    response = post(client, urls=text, name="my list")
    batch = Batch.objects.get()
    assert response.status_code == 302 and response.headers["Location"] == f"/batches/{batch.pk}/"
    assert (batch.source, batch.name, batch.total, batch.providers) == ("paste", "my list", 2, [])
    assert submitted_urls(batch) == ["https://a.example.org/1", "https://a.example.org/2"]
    html = client.get(response.headers["Location"]).content.decode()
    assert "2 lines rejected" in html
    rows = re.findall(r"<tr>\s*<td>(\d+)</td>\s*<td[^>]*>([^<]*)</td>\s*<td>([^<]*)</td>", html)
    assert [(line, text) for line, text, _ in rows] == [("3", "not a url"), ("5", "ftp://files.example.org/x")]
    assert all(reason for _, _, reason in rows)


def test_nothing_valid_is_shown_on_the_form_with_line_numbers(client: Client) -> None:
    response = post(client, urls="nope\n\nexample.org/no-scheme")
    assert response.status_code == 200 and Batch.objects.count() == 0
    html = response.content.decode()
    assert "none of the URLs is valid" in html
    assert re.search(r"<td>1</td>\s*<td[^>]*>nope</td>", html)
    assert re.search(r"<td>3</td>\s*<td[^>]*>example.org/no-scheme</td>", html)
    assert "example.org/no-scheme</textarea>" in html  # what was typed is kept


@pytest.mark.parametrize(("fields", "message"), [
    ({"urls": ""}, "paste at least one URL or upload a CSV file"),
    ({"urls": "   \n  "}, "paste at least one URL or upload a CSV file"),
    ({"urls": "https://a.example.org/1", "providers": []}, "choose at least one provider"),
    ({"urls": "https://a.example.org/1", "providers": ["page", "telepathy"]}, "Select a valid choice"),
])
def test_unusable_forms_say_why(client: Client, fields: dict[str, Any], message: str) -> None:
    response = post(client, **fields)
    assert response.status_code == 200 and message in response.content.decode()
    assert Batch.objects.count() == 0


def test_the_form_checks_the_default_set_and_leaves_pagespeed_unchecked(client: Client) -> None:
    html = client.get("/").content.decode()
    checked = re.findall(r'name="providers" value="(\w+)" id="id_providers_\w+" checked', html)
    assert sorted(checked) == sorted(DEFAULT_NAMES) and len(checked) == len(DEFAULT_NAMES)  # grouped: own order
    assert "pagespeed" not in checked and 'value="pagespeed"' in html
    assert set(re.findall(r'name="providers" value="(\w+)"', html)) == set(PROVIDER_NAMES)  # every one offered
    pagespeed = re.search(r'<div class="form-check mb-0" data-provider="pagespeed">(.*?)</div>', html, re.S)
    assert pagespeed and "on request" in pagespeed.group(1)


def test_the_form_groups_providers_under_headings(client: Client) -> None:
    html = client.get("/").content.decode()
    groups = re.findall(r'class="border rounded p-2 h-100 provider-group" data-group="(\w+)"', html)
    assert groups == ["page", "domain", "threat", "authority", "social", "archive", "indicator"]
    threat = html.split('data-group="threat"')[1].split('data-group="authority"')[0]
    assert {"dnsbl", "safebrowsing", "urlhaus", "phishtank"} <= set(re.findall(r'data-provider="(\w+)"', threat))


def test_a_keyed_provider_without_its_key_is_shown_disabled_with_the_variable(
        client: Client, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LINKMETER_SAFEBROWSING_API_KEY", raising=False)
    monkeypatch.setenv("LINKMETER_MOZ_API_KEY", "id:secret")
    html = client.get("/").content.decode()
    safebrowsing = html.split('data-provider="safebrowsing"')[1].split('data-provider=')[0]
    moz = html.split('data-provider="moz"')[1].split('data-provider=')[0]
    assert ">disabled</span>" in safebrowsing and "no API key: set LINKMETER_SAFEBROWSING_API_KEY" in safebrowsing
    assert "disabled" not in moz and "id:secret" not in html


def test_the_default_set_is_stored_as_the_default_and_pagespeed_as_a_choice(client: Client) -> None:
    post(client, urls="https://a.example.org/1")
    assert Batch.objects.get().providers == []  # the default set, whatever it becomes
    post(client, urls="https://a.example.org/2", providers=[*DEFAULT, "pagespeed"])
    chosen = Batch.objects.order_by("-id").first()
    assert chosen is not None and set(chosen.providers) == {*DEFAULT, "pagespeed"}


def test_a_checked_choice_survives_a_form_error(client: Client) -> None:
    html = post(client, urls="", providers=["page", "pagespeed"]).content.decode()
    checked = re.findall(r'name="providers" value="(\w+)" id="id_providers_\w+" checked', html)
    assert checked == ["page", "pagespeed"]


def test_chosen_providers_and_fresh_are_passed_on(client: Client) -> None:
    post(client, urls="https://a.example.org/1", providers=["page", "rdap"], fresh="on")
    batch = Batch.objects.get()
    assert batch.providers == ["page", "rdap"] and batch.fresh
    assert Analysis.objects.get().providers == ["page", "rdap"]


def test_too_many_pasted_urls_is_a_clear_error(client: Client, settings: SettingsWrapper) -> None:
    settings.LINKMETER = {**settings.LINKMETER, "MAX_URLS_PER_REQUEST": 3}
    response = post(client, urls="\n".join(f"https://a.example.org/{i}" for i in range(5)))
    assert response.status_code == 200 and "5 URLs in one request; the limit is 3" in response.content.decode()


@pytest.mark.parametrize("header", ["url", "URL", "Link", "href", "address", " Url "])
def test_a_csv_url_column_is_found_by_its_header(client: Client, header: str) -> None:
    content = f"name,{header},score\nA,https://a.example.org/1,3\nB,https://a.example.org/2,4\n".encode()
    response = upload(client, content)
    batch = Batch.objects.get()
    assert response.status_code == 302 and batch.source == "csv"
    assert submitted_urls(batch) == ["https://a.example.org/1", "https://a.example.org/2"]


def test_a_csv_without_header_uses_the_column_that_looks_like_urls(client: Client) -> None:
    content = b"alpha;https://a.example.org/1;7\nbeta;https://a.example.org/2;8\n"
    assert upload(client, content).status_code == 302
    assert submitted_urls(Batch.objects.get()) == ["https://a.example.org/1", "https://a.example.org/2"]


def test_a_csv_with_an_unnamed_header_skips_it(client: Client) -> None:
    content = b"\xef\xbb\xbfsite,visits\r\nhttps://a.example.org/1,10\r\nhttps://a.example.org/2,20\r\n"  # with a BOM
    assert upload(client, content).status_code == 302
    assert submitted_urls(Batch.objects.get()) == ["https://a.example.org/1", "https://a.example.org/2"]


def test_bad_csv_rows_are_reported_with_their_line_in_the_file(client: Client) -> None:
    content = b"url\nhttps://a.example.org/1\nnot-a-url\n\nhttps://a.example.org/2\n"
    response = upload(client, content)
    html = client.get(response.headers["Location"]).content.decode()
    assert re.search(r"<td>3</td>\s*<td[^>]*>not-a-url</td>", html)
    assert submitted_urls(Batch.objects.get()) == ["https://a.example.org/1", "https://a.example.org/2"]


def test_an_ambiguous_csv_lets_the_person_choose_the_column_without_uploading_again(client: Client) -> None:
    content = b"from,to\nhttps://a.example.org/1,https://b.example.org/1\nhttps://a.example.org/2,https://b.example.org/2\n"
    response = upload(client, content, name="pairs.csv")
    html = response.content.decode()
    assert response.status_code == 200 and Batch.objects.count() == 0
    assert "several columns look like URLs: choose the column that holds the URLs" in html
    assert "pairs.csv" in html and '<option value="1" selected>1. from' in html and '<option value="2">2. to' in html
    response = post(client, use_pending="on", csv_column="2")
    assert response.status_code == 302
    assert submitted_urls(Batch.objects.get()) == ["https://b.example.org/1", "https://b.example.org/2"]


def test_a_csv_where_no_column_looks_like_urls_asks_for_the_column(client: Client) -> None:
    response = upload(client, b"a,b\nx,y\n")
    assert response.status_code == 200 and "no column looks like URLs" in response.content.decode()


@pytest.mark.parametrize(("content", "message"), [
    (b"", "The submitted file is empty."),
    (b"  \n\n ", "the file is empty"),
    (b"url\n", "the file has a header but no rows"),
    (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00", "the file is not text (it looks binary)"),
    ("url\nhttps://caf\u00e9.example.org/\n".encode("latin-1"),
     "the file is not UTF-8 text (invalid byte at position 15)"),
])
def test_unusable_files_get_a_clear_message(client: Client, content: bytes, message: str) -> None:
    response = upload(client, content)
    assert response.status_code == 200 and message in response.content.decode()
    assert Batch.objects.count() == 0


def test_too_many_csv_rows_is_a_clear_error(client: Client, settings: SettingsWrapper) -> None:
    settings.LINKMETER = {**settings.LINKMETER, "UPLOAD_MAX_ROWS": 3}
    ok = "url\n" + "".join(f"https://a.example.org/{i}\n" for i in range(3))
    assert upload(client, ok.encode()).status_code == 302
    too_many = "url\n" + "".join(f"https://a.example.org/{i}\n" for i in range(4))
    response = upload(client, too_many.encode())
    assert response.status_code == 200 and "the file has more than 3 rows; the limit is 3" in response.content.decode()


def test_a_file_over_the_size_cap_is_a_clear_error(client: Client, settings: SettingsWrapper) -> None:
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 2048
    content = b"url\n" + b"https://a.example.org/some/long/path\n" * 100
    response = upload(client, content)
    assert response.status_code == 200 and "the file is larger than the limit of 2 KB" in response.content.decode()
    assert Batch.objects.count() == 0


def test_pasting_and_uploading_at_once_is_refused(client: Client) -> None:
    response = upload(client, b"url\nhttps://a.example.org/1\n", urls="https://a.example.org/2")
    assert response.status_code == 200 and "paste URLs or upload a file, not both" in response.content.decode()


def test_a_pasted_text_over_the_request_cap_gets_a_page_that_says_why(client: Client,
                                                                      settings: SettingsWrapper) -> None:
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    response = post(client, urls="https://a.example.org/long/path\n" * 100)
    assert response.status_code == 400 and "limited in size" in response.content.decode()
    assert Batch.objects.count() == 0
