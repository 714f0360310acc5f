"""The Links and Batches pages: search, filters, sort links, pages, exports of what is shown; titles escaped."""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlparse

import pytest
from django.test import Client

from tests.web.ui.conftest import Finish

pytestmark = pytest.mark.django_db

PAYLOAD = "<script>alert(1)</script>"


@pytest.fixture
def shown(finished_batch: Finish) -> None:
    finished_batch([f"https://news.example/{n}" for n in range(3)] + ["https://xss.example.com/a"],
                   [{"page.status": 200, "page.title": f"Story {n}", "hackernews.points": n * 100}
                    for n in range(3)] + [{"page.status": 200, "page.title": f"Evil {PAYLOAD}"}], name="first")
    finished_batch(["https://shop.example.org/x"], [{}], finish=0, name="second")


def urls(html: str) -> list[str]:
    return re.findall(r'<tr data-link-id="\d+">\s*<td class="text-break"><a href="[^"]+">([^<]+)</a>', html)


def test_the_links_page_searches_filters_and_sorts(client: Client, shown: None) -> None:
    html = client.get("/links/").content.decode()
    assert len(urls(html)) == 5 and 'href="/links/"' in html and 'href="/batches/"' in html  # nav
    assert urls(client.get("/links/", {"q": "shop"}).content.decode()) == ["https://shop.example.org/x"]
    hot = client.get("/links/", {"filter": "hackernews.points>=100", "sort": "-hackernews.points"}).content.decode()
    assert urls(hot) == ["https://news.example/2", "https://news.example/1"]
    claimed = client.get("/links/", {"status": "running"}).content.decode()
    assert urls(claimed) == ["https://shop.example.org/x"]
    # the column header flips the sort, keeping the filters
    header = re.search(r'data-column="hackernews.points"[^>]*><a [^>]*href="([^"]+)"', hot)
    assert header is not None
    flipped = parse_qs(urlparse(header.group(1).replace("&amp;", "&")).query)
    assert flipped == {"filter": ["hackernews.points>=100"], "sort": ["hackernews.points"]}
    # the exports repeat what is shown
    export = re.search(r'href="(/api/v1/links\?[^"]+format=csv)"', hot)
    assert export is not None
    assert parse_qs(urlparse(export.group(1).replace("&amp;", "&")).query)["filter"] == ["hackernews.points>=100"]


def test_a_scraped_title_is_escaped_on_the_links_page(client: Client, shown: None) -> None:
    html = client.get("/links/", {"q": "evil"}).content.decode()
    assert PAYLOAD not in html and "Evil &lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_a_bad_filter_is_shown_with_its_code(client: Client, shown: None) -> None:
    response = client.get("/links/", {"filter": "nosuch.points>1"})
    assert response.status_code == 400
    html = response.content.decode()
    assert 'data-code="unknown_signal"' in html and "nosuch.points" in html


def test_pages_follow_the_cursor(client: Client, finished_batch: Finish) -> None:
    finished_batch([f"https://many.example/{n}" for n in range(55)], [{"hackernews.points": n} for n in range(55)])
    first = client.get("/links/", {"sort": "hackernews.points"}).content.decode()
    assert urls(first)[:2] == ["https://many.example/0", "https://many.example/1"] and len(urls(first)) == 50
    following = re.search(r'href="([^"]+)" id="links-next"', first)
    assert following is not None
    second = client.get("/links/" + following.group(1).replace("&amp;", "&")).content.decode()
    assert urls(second) == [f"https://many.example/{n}" for n in range(50, 55)]
    assert 'id="links-next"' not in second and 'id="links-first"' in second


def test_the_batches_page_lists_every_batch_with_its_progress(client: Client, shown: None) -> None:
    html = client.get("/batches/").content.decode()
    assert re.findall(r'data-batch-status="(\w+)"', html) == ["running", "finished"]
    assert 'value="100"' in html and "0/1" in html and "4/4" in html
    open_only = client.get("/batches/", {"status": "open"}).content.decode()
    assert re.findall(r'data-batch-status="(\w+)"', open_only) == ["running"]
    assert 'id="all-batches"' in client.get("/").content.decode()
