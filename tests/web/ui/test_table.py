"""The batch table sorts and filters by any numeric signal, in the database, from query parameters."""

from __future__ import annotations

import re

import pytest
from django.test import Client

from linkmeter.engine.plan import Plan
from linkmeter.output import table_columns
from linkmeter.providers.registry import PROVIDER_CLASSES
from linkmeter.web.links.models import Batch
from linkmeter.web.links.selectors.tables import SignalRange, batch_table
from tests.web.ui.conftest import Finish

pytestmark = pytest.mark.django_db

URLS = [f"https://a.example.org/{i}" for i in range(5)]
SIGNALS = [
    {"page.status": 200, "hackernews.points": 10, "rdap.domain_age_days": 300},
    {"page.status": 200, "hackernews.points": 250, "rdap.domain_age_days": None},
    {"page.status": 404, "hackernews.points": 0},
    {"page.status": 200, "hackernews.points": 42.5, "rdap.domain_age_days": 3000},
    {"page.status": 500},
]


@pytest.fixture
def batch(finished_batch: Finish) -> Batch:
    return finished_batch(URLS, SIGNALS)


def shown_urls(client: Client, batch: Batch, query: str) -> list[str]:
    html = client.get(f"/batches/{batch.pk}/table/?{query}").content.decode()
    return re.findall(r'class="link-url[^"]*">([^<]+)</a>', html)


def test_rows_come_in_input_order_by_default(client: Client, batch: Batch) -> None:
    assert shown_urls(client, batch, "") == URLS


def test_sorting_by_a_signal_puts_rows_without_it_last(client: Client, batch: Batch) -> None:
    by_points = [URLS[1], URLS[3], URLS[0], URLS[2], URLS[4]]
    assert shown_urls(client, batch, "sort=hackernews.points") == by_points
    assert shown_urls(client, batch, "sort=hackernews.points&order=asc") == [URLS[2], URLS[0], URLS[3], URLS[1],
                                                                               URLS[4]]
    # a null value sorts with the missing ones
    assert shown_urls(client, batch, "sort=rdap.domain_age_days") == [URLS[3], URLS[0], URLS[1], URLS[2], URLS[4]]


def test_filtering_keeps_a_range_of_a_signal(client: Client, batch: Batch) -> None:
    assert shown_urls(client, batch, "signal=hackernews.points&min=10") == [URLS[0], URLS[1], URLS[3]]
    assert shown_urls(client, batch, "signal=hackernews.points&min=5&max=100") == [URLS[0], URLS[3]]
    assert shown_urls(client, batch, "signal=page.status&max=299&sort=hackernews.points") == [URLS[1], URLS[3],
                                                                                            URLS[0]]
    html = client.get(f"/batches/{batch.pk}/?signal=page.status&min=400").content.decode()
    assert "2 of 5 rows match" in html


def test_bad_parameters_are_ignored_with_a_note_not_a_500(client: Client, batch: Batch) -> None:
    response = client.get(f"/batches/{batch.pk}/?sort=page.title&min=lots&page=-1")
    assert response.status_code == 200 and "Some table options were ignored" in response.content.decode()
    assert shown_urls(client, batch, "sort=page.title&min=lots") == URLS


def test_the_live_table_keeps_the_sort_and_filter(client: Client, finished_batch: Finish) -> None:
    running = finished_batch(URLS[:2], SIGNALS[:2], finish=1)
    html = client.get(f"/batches/{running.pk}/?sort=hackernews.points&order=asc").content.decode()
    assert f'hx-get="/batches/{running.pk}/table/?sort=hackernews.points&amp;order=asc&amp;page=1"' in html
    assert 'href="?sort=hackernews.points&amp;order=desc"' in html  # the sorted column's link flips the order


def test_pages_of_rows(client: Client, finished_batch: Finish, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("linkmeter.web.ui.views.PAGE_SIZE", 2)
    batch = finished_batch(URLS, SIGNALS)
    assert shown_urls(client, batch, "") == URLS[:2]
    assert shown_urls(client, batch, "page=3") == URLS[4:]
    html = client.get(f"/batches/{batch.pk}/?page=2").content.decode()
    assert "page 2 of 3" in html and 'href="?page=1"' in html and 'href="?page=3"' in html


def test_the_selector_refuses_a_signal_that_is_not_numeric(batch: Batch) -> None:
    with pytest.raises(ValueError, match=r"not a numeric signal: page\.title"):
        batch_table(batch, sort="page.title")
    with pytest.raises(ValueError, match="not a numeric signal: nope"):
        batch_table(batch, ranges=[SignalRange("nope", 1, 2)])
    page = batch_table(batch, ranges=[SignalRange("page.status", 200, 200)], offset=1, limit=1)
    assert page.total == 5 and page.matching == 3 and [r["url"] for r in page.rows] == [URLS[1]]


def test_the_columns_and_headings_are_the_providers_headlines_as_in_the_cli_table(
        client: Client, batch: Batch) -> None:
    html = client.get(f"/batches/{batch.pk}/table/").content.decode()
    headings = dict(re.findall(r'title="sort by ([\w.]+)">([^<&]+)', html))
    cli = {signal: heading for heading, signal, _ in table_columns(Plan.build([cls() for cls in PROVIDER_CLASSES]))}
    # Title and HTTP status have their own places (the URL cell, the HTTP column); every other headline
    # signal is a column, under the same heading as in `linkmeter analyze`.
    assert {signal: heading.strip() for signal, heading in headings.items()} == {
        signal: heading for signal, heading in cli.items() if signal not in ("page.title", "page.status")}
    assert headings["wayback.capture_count"].strip() == "Captures"


SPAM_SIGNALS = [
    {"spam.score": 0.91, "spam.flag": True},
    {"spam.score": 0.12, "spam.flag": False},
    {"page.status": 200},  # no verdict: left out by the flag filter either way
    {"spam.score": 0.55, "spam.flag": True},
    {"spam.score": 0.3, "spam.flag": False},
]


def test_the_table_keeps_the_links_flagged_spam_or_not_and_sorts_by_the_score(client: Client,
                                                                              finished_batch: Finish) -> None:
    batch = finished_batch(URLS, SPAM_SIGNALS)
    assert shown_urls(client, batch, "spam=flagged") == [URLS[0], URLS[3]]
    assert shown_urls(client, batch, "spam=clear") == [URLS[1], URLS[4]]
    assert shown_urls(client, batch, "spam=flagged&sort=spam.score&order=asc") == [URLS[3], URLS[0]]
    assert shown_urls(client, batch, "sort=spam.score") == [URLS[0], URLS[3], URLS[4], URLS[1], URLS[2]]
    assert shown_urls(client, batch, "signal=spam.score&min=0.25&spam=clear") == [URLS[4]]
    html = client.get(f"/batches/{batch.pk}/?spam=flagged").content.decode()
    assert "2 of 5 rows match" in html and '<option value="flagged" selected>' in html
    assert batch_table(batch, spam=True).matching == 2
