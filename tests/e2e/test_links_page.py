"""The Links page in Debian's Chromium against `linkmeter serve --demo`: search, filter, sort, export; a
scraped script shows as text."""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path

from playwright.sync_api import expect

from tests.e2e.conftest import Watched
from tests.e2e.test_browser import submit_paste, wait_finished

URLS = ([f"https://news.example.org/a/{i}" for i in range(1, 7)]
        + [f"https://blog.example.net/post/{i}" for i in range(1, 6)] + ["https://xss.example.com/a/1"])


def shown_urls(watched: Watched) -> list[str]:
    return watched.page.locator("#links-table tbody tr[data-link-id] td:first-child a").all_inner_texts()


def test_the_links_page_searches_filters_sorts_and_exports(watched: Watched) -> None:
    page = watched.page
    submit_paste(page, URLS, "links page")
    wait_finished(page, len(URLS))

    page.click("#nav-links a.nav-link:text-is('Links')")
    page.wait_for_url(re.compile(r"/links/$"))
    assert sorted(shown_urls(watched)) == sorted(URLS)

    # search: the scraped title is shown as text, nothing of it runs
    page.fill("#links-q", "xss")
    page.click("#links-search button[type=submit]")
    page.wait_for_url(re.compile(r"q=xss"))
    assert shown_urls(watched) == ["https://xss.example.com/a/1"]
    expect(page.locator(".link-title").first).to_have_text(re.compile(r"<script>alert\(1\)</script>"))
    assert page.locator("#links-table script").count() == 0

    # filter by domain and a signal comparison
    page.click("#links-search a:text-is('Clear')")
    page.fill("#links-domain", "example.org")
    page.fill("#links-filter", "page.status=200, spam.score>=0")
    page.click("#links-search button[type=submit]")
    page.wait_for_url(re.compile(r"domain=example.org"))
    assert sorted(shown_urls(watched)) == sorted(u for u in URLS if "news.example.org" in u)

    # sort by a column, server side, both ways
    page.click("#links-search a:text-is('Clear')")
    page.click('#links-table th[data-column="spam.score"] a')
    page.wait_for_url(re.compile(r"sort=-spam.score"))
    expect(page.locator('#links-table th[data-column="spam.score"]')).to_have_attribute("aria-sort", "descending")
    column = list(page.locator("#links-table th").all_inner_texts()).index(
        page.locator('#links-table th[data-column="spam.score"]').inner_text())
    scores = [float(s) for s in page.locator(f"#links-table tbody tr td:nth-child({column + 1})").all_inner_texts()]
    assert scores == sorted(scores, reverse=True) and len(set(scores)) > 1
    page.click('#links-table th[data-column="spam.score"] a')
    page.wait_for_url(re.compile(r"sort=spam.score"))
    ascending = [float(s) for s in page.locator(f"#links-table tbody tr td:nth-child({column + 1})").all_inner_texts()]
    assert ascending == sorted(scores)

    # the export is what is shown, in the same order
    order = shown_urls(watched)
    with page.expect_download() as download_info:
        page.click('a.export-link[data-format="csv"]')
    rows = list(csv.DictReader(io.StringIO(Path(download_info.value.path()).read_text(encoding="utf-8"))))
    assert [row["url"] for row in rows] == order
    assert [float(f"{float(row['spam.score']):.4g}") for row in rows] == ascending  # as shown: 4 digits

    # the Batches page lists the batch, finished
    page.click("#nav-links a.nav-link:text-is('Batches')")
    page.wait_for_url(re.compile(r"/batches/$"))
    expect(page.locator("#batches-table tbody tr").first).to_contain_text("links page")
    expect(page.locator("#batches-table [data-batch-status]").first).to_have_text("finished")
    watched.assert_clean()
