"""The issue's browser scenarios against `linkmeter serve --demo` in Debian's Chromium."""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path

from playwright.sync_api import Page, expect

from linkmeter.providers.registry import PROVIDER_CLASSES
from tests.e2e.conftest import Watched

FINISH_TIMEOUT = 60_000  # ms for a batch to reach 100 % in the demo
SCREENSHOTS = Path("/tmp")


def submit_paste(page: Page, urls: list[str], name: str) -> None:
    page.goto("/")
    page.fill("#id_urls", "\n".join(urls))
    page.fill("#id_name", name)
    page.click("#submit-form button[type=submit]")
    page.wait_for_url(re.compile(r"/batches/\d+/$"))


def wait_finished(page: Page, total: int) -> None:
    """The live progress bar reaches 100 % and the live table holds every row, final, with no reload."""
    expect(page.locator("#progress-percent")).to_have_text("100 %", timeout=FINISH_TIMEOUT)
    expect(page.locator("#progress-bar")).to_have_js_property("value", 100)
    expect(page.locator("#progress-bar")).to_have_js_property("position", 1)  # the bar is full
    expect(page.locator("#progress-finished")).to_have_text(str(total))
    expect(page.locator("#batch-table")).to_have_attribute("data-finished", "true", timeout=FINISH_TIMEOUT)
    expect(page.locator("#results tbody tr")).to_have_count(min(total, 100))
    expect(page.locator('#results tbody tr[data-status="queued"], #results tbody tr[data-status="running"]')
           ).to_have_count(0)


def test_paste_20_urls_watch_them_finish_open_a_link_and_export_csv(watched: Watched) -> None:
    page = watched.page
    urls = [f"https://news.example.org/a/{i}" for i in range(1, 21)]
    submit_paste(page, urls, "twenty")
    expect(page.locator("h1")).to_have_text("twenty")
    wait_finished(page, 20)

    # the table shows numbers: an HTTP status and the domain's age on every row
    statuses = page.locator("#results tbody tr td:nth-child(4)").all_inner_texts()
    assert statuses == ["200"] * 20
    ages = page.locator('#results tbody td[data-signal="rdap.domain_age_days"]').all_inner_texts()
    assert all(re.fullmatch(r"[\d,]+", age) for age in ages) and any(age != "0" for age in ages)
    page.screenshot(path=str(SCREENSHOTS / "linkmeter-e2e-batch.png"), full_page=True)

    # sorting by a signal, server side
    page.click('#results th a[title="sort by wayback.capture_count"]')
    page.wait_for_url(re.compile(r"sort=wayback.capture_count"))
    captures = [int(c.replace(",", "")) for c in
                page.locator('#results tbody td[data-signal="wayback.capture_count"]').all_inner_texts()]
    assert captures == sorted(captures, reverse=True) and len(set(captures)) > 1

    # the CSV export, downloaded through its link, has one row per URL
    with page.expect_download() as download_info:
        page.click('a[data-export="csv"]')
    rows = list(csv.DictReader(io.StringIO(Path(download_info.value.path()).read_text(encoding="utf-8"))))
    assert len(rows) == 20
    assert {row["url"] for row in rows} == set(urls)

    # a link page shows every provider with its status
    page.locator("#results tbody a.link-url").first.click()
    page.wait_for_url(re.compile(r"/links/\d+/$"))
    for cls in (cls for cls in PROVIDER_CLASSES if cls.in_default_set):  # what a paste naming none runs
        card = page.locator(f'.provider-card[data-provider="{cls.name}"]')
        expect(card).to_be_visible()
        expect(card.locator(".provider-status")).to_have_text(re.compile(r"^(ok|cached|error|timeout|skipped)$"))
    page.click('.provider-card[data-provider="page"] .raw-button')
    expect(page.locator("#raw-page pre")).to_contain_text('"status"')
    expect(page.locator(".history-chart canvas").first).to_be_visible()
    page.screenshot(path=str(SCREENSHOTS / "linkmeter-e2e-link.png"), full_page=True)

    # feedback is confirmed
    page.click("#feedback-spam")
    expect(page.locator(".alert-success")).to_contain_text("recorded as spam")
    watched.assert_clean()


def test_a_script_in_a_scraped_title_shows_as_text_and_runs_nothing(watched: Watched) -> None:
    page = watched.page
    submit_paste(page, ["https://xss.example.com/a/1"], "xss")
    wait_finished(page, 1)
    title = page.locator("#results .row-title").first
    expect(title).to_have_text("Totally normal article <script>alert(1)</script>")
    page.locator("#results tbody a.link-url").first.click()
    page.wait_for_url(re.compile(r"/links/\d+/$"))
    expect(page.locator("#link-title")).to_have_text("Totally normal article <script>alert(1)</script>")
    expect(page.locator(".provider-card[data-provider=page]")).to_contain_text("onerror=alert(1)")
    page.click('.provider-card[data-provider="page"] .raw-button')
    expect(page.locator("#raw-page pre")).to_contain_text('"final_url": "https://xss.example.com/a/1"')
    assert page.locator("img[src=x]").count() == 0
    page.wait_for_timeout(500)  # give anything injected a moment to run
    watched.assert_clean()


def test_a_csv_upload_of_200_urls_completes(watched: Watched, tmp_path: Path) -> None:
    page = watched.page
    path = tmp_path / "links.csv"
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "Link", "note"])
        writer.writerows([i, f"https://blog.example.net/posts/{i}", f"row {i}"] for i in range(1, 201))
    page.goto("/")
    page.set_input_files("#id_csv_file", str(path))
    page.click("#submit-form button[type=submit]")
    page.wait_for_url(re.compile(r"/batches/\d+/$"))
    expect(page.locator("#batch-progress")).to_contain_text("of 200 finished")
    wait_finished(page, 200)
    expect(page.locator("#batch-table")).to_contain_text("200 rows")
    expect(page.locator("#batch-table")).to_contain_text("page 1 of 2")
    watched.assert_clean()


def test_the_providers_page_lists_every_provider(watched: Watched) -> None:
    page = watched.page
    page.goto("/providers/")
    for cls in PROVIDER_CLASSES:
        expect(page.locator(f'#health tr[data-provider="{cls.name}"]')).to_be_visible()
    with page.expect_response(re.compile(r"/providers/table/$"), timeout=10_000):
        pass  # the table refreshes itself
    expect(page.locator('#health tr[data-provider="page"]')).to_contain_text("enabled")
    watched.assert_clean()
