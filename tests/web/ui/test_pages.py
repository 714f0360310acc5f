"""Every page renders, with the CSP header, the navbar and only local assets."""

from __future__ import annotations

import re

import pytest
from django.test import Client

from linkmeter.web.links.models import Link
from tests.web.ui.conftest import Finish

pytestmark = pytest.mark.django_db


def test_the_home_page_offers_the_form_with_the_default_set_checked(client: Client) -> None:
    response = client.get("/")
    assert response.status_code == 200
    html = response.content.decode()
    for name in ("page", "dns", "rdap", "dnsbl", "wayback", "hackernews", "reddit", "engagement"):
        assert re.search(rf'value="{name}" id="[^"]+" checked', html), name
    assert 'name="csrfmiddlewaretoken"' in html
    assert 'enctype="multipart/form-data"' in html
    for href in ('href="/"', 'href="/providers/"', 'href="/api/docs"', 'href="/admin/"'):
        assert href in html


def test_pages_carry_a_strict_csp_and_load_only_local_assets(client: Client, finished_batch: Finish) -> None:
    batch = finished_batch(["https://a.example.org/1"], [{"page.status": 200}])
    link = Link.objects.get()
    for path in ("/", f"/batches/{batch.pk}/", f"/links/{link.pk}/", "/providers/"):
        response = client.get(path)
        assert response.status_code == 200, path
        csp = response.headers["Content-Security-Policy"]
        assert "script-src 'self'" in csp and "style-src 'self'" in csp and "unsafe" not in csp
        html = response.content.decode()
        assert "<style" not in html and " style=" not in html and " hx-on" not in html
        sources = re.findall(r'<(?:script|link)[^>]+(?:src|href)="([^"]+)"', html)
        assert sources and all(s.startswith("/static/") for s in sources), sources
        assert not re.search(r"<script(?![^>]*\b(?:src=|type=\"application/json\"))", html), path


def test_vendored_assets_are_served_locally(client: Client) -> None:
    for path in ("/static/ui/vendor/bootstrap/bootstrap.min.css", "/static/ui/vendor/bootstrap/bootstrap.bundle.min.js",
                 "/static/ui/vendor/htmx/htmx.min.js", "/static/ui/vendor/chartjs/chart.umd.min.js",
                 "/static/ui/favicon.svg", "/static/ui/link.js", "/static/ui/app.css"):
        response = client.get(path)
        assert response.status_code == 200, path
        assert len(response.getvalue()) > 100


def test_the_batch_page_shows_progress_counts_and_export_links(client: Client, finished_batch: Finish) -> None:
    batch = finished_batch(["https://a.example.org/1", "https://a.example.org/2"],
                           [{"page.status": 200}, {"page.status": 404}], finish=1)
    html = client.get(f"/batches/{batch.pk}/").content.decode()
    assert 'value="50"' in html and "1</strong> of 2 finished" in html
    assert 'data-status="partial">partial: 1' in html and 'data-status="running">running: 1' in html
    assert 'hx-trigger="every 1s"' in html and 'hx-trigger="every 2s"' in html  # still polling
    assert '<span id="progress-status" data-batch-status="running">about' in html  # the API's batch status
    for fmt in ("csv", "ndjson", "json"):
        assert f'href="/api/v1/batches/{batch.pk}/results?format={fmt}"' in html
    links = Link.objects.order_by("url")
    assert f'href="/links/{links[0].pk}/"' in html and f'href="/links/{links[1].pk}/"' in html


def test_polling_stops_once_the_batch_is_finished(client: Client, finished_batch: Finish) -> None:
    batch = finished_batch(["https://a.example.org/1"], [{"page.status": 200}])
    for path in (f"/batches/{batch.pk}/", f"/batches/{batch.pk}/progress/", f"/batches/{batch.pk}/table/"):
        html = client.get(path).content.decode()
        assert "hx-trigger" not in html, path
    progress = client.get(f"/batches/{batch.pk}/progress/").content.decode()
    assert 'value="100"' in progress and '<span id="progress-status" data-batch-status="finished">complete' in progress


def test_the_partials_are_fragments(client: Client, finished_batch: Finish) -> None:
    batch = finished_batch(["https://a.example.org/1"], [{"page.status": 200, "page.word_count": 321}], finish=0)
    progress = client.get(f"/batches/{batch.pk}/progress/").content.decode()
    table = client.get(f"/batches/{batch.pk}/table/").content.decode()
    assert progress.lstrip().startswith('<section id="batch-progress"') and "<html" not in progress
    assert table.lstrip().startswith('<section id="batch-table"') and "<html" not in table
    assert 'data-status="running"' in table


def test_the_batch_table_shows_title_http_status_and_numbers(client: Client, finished_batch: Finish) -> None:
    batch = finished_batch(["https://a.example.org/1"],
                           [{"page.status": 200, "page.title": "Budget news", "rdap.domain_age_days": 1234,
                             "hackernews.points": 56}])
    html = client.get(f"/batches/{batch.pk}/").content.decode()
    assert "Budget news" in html
    assert re.search(r'<td class="text-end num">200</td>', html)
    assert re.search(r'data-signal="rdap.domain_age_days">1,234<', html)
    assert re.search(r'data-signal="hackernews.points">56<', html)


def test_a_link_page_shows_every_provider_and_its_history_data(client: Client, finished_batch: Finish) -> None:
    finished_batch(["https://a.example.org/1"], [{"page.status": 200, "page.word_count": 99}])
    link = Link.objects.get()
    html = client.get(f"/links/{link.pk}/").content.decode()
    assert 'data-provider="page"' in html and 'data-provider="rdap"' in html
    assert "HTTP 503 &lt;from upstream&gt;" in html and "3 attempts" in html and "12.5 ms" in html
    assert re.search(r"page.word_count</th>\s*<td[^>]*>99", html)
    assert '<script id="history-data" type="application/json">' in html and '"page.word_count"' in html
    assert f'hx-get="/analyses/{link.latest_analysis_id}/raw/page/"' in html


def test_the_raw_response_is_an_escaped_json_block(client: Client, finished_batch: Finish) -> None:
    finished_batch(["https://a.example.org/1"], [{"page.status": 200}])
    link = Link.objects.get()
    html = client.get(f"/analyses/{link.latest_analysis_id}/raw/page/").content.decode()
    assert html.startswith('<pre class="raw-json') and "&lt;b&gt;raw&lt;/b&gt;" in html and "<b>" not in html
    assert client.get(f"/analyses/{link.latest_analysis_id}/raw/telepathy/").status_code == 404


def test_a_link_not_analysed_yet_says_so(client: Client, finished_batch: Finish) -> None:
    finished_batch(["https://a.example.org/1"], [{}], finish=0)
    html = client.get(f"/links/{Link.objects.get().pk}/").content.decode()
    assert "no finished analysis yet" in html and "A newer analysis is running" in html


def test_unknown_ids_are_404_pages(client: Client) -> None:
    for path in ("/batches/999/", "/batches/999/table/", "/links/999/", "/analyses/999/raw/page/"):
        assert client.get(path).status_code == 404, path


def test_the_providers_page_lists_every_provider_with_its_health(client: Client, finished_batch: Finish) -> None:
    finished_batch(["https://a.example.org/1"], [{"page.status": 200}])
    html = client.get("/providers/").content.decode()
    for name in ("page", "dns", "rdap", "dnsbl", "wayback", "hackernews", "reddit", "engagement"):
        assert f'<tr data-provider="{name}">' in html
    assert 'hx-get="/providers/table/"' in html and 'hx-trigger="every 3s"' in html
    assert "error: HTTP 503 &lt;from upstream&gt;" in html  # the last error, escaped
    partial = client.get("/providers/table/").content.decode()
    assert partial.lstrip().startswith('<section id="providers-health"')


def test_the_progress_is_rounded_down(client: Client, finished_batch: Finish) -> None:
    urls = [f"https://a.example.org/{i}" for i in range(200)]
    batch = finished_batch(urls, [{"page.status": 200}] * 200, finish=199)
    html = client.get(f"/batches/{batch.pk}/progress/").content.decode()
    assert 'value="99"' in html and "99 %" in html and "199</strong> of 200" in html


def test_the_link_page_groups_provider_cards_under_headings(client: Client, finished_batch: Finish) -> None:
    finished_batch(["https://a.example.org/1"], [{"page.status": 200, "page.title": "<script>alert(1)</script>"}])
    link = Link.objects.get()
    html = client.get(f"/links/{link.pk}/").content.decode()
    sections = re.findall(r'<section class="provider-group mb-3" data-group="(\w+)"', html)
    assert sections == ["page", "domain"]  # the fixture's results: page, and rdap (a domain provider)
    domain = html.split('data-group="domain"')[1]
    assert 'data-provider="rdap"' in domain and 'id="group-domain">Domain' in domain
    assert "<script>alert(1)</script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_the_batch_page_names_its_providers(client: Client, finished_batch: Finish) -> None:
    default = finished_batch(["https://a.example.org/1"], [{"page.status": 200}])
    html = client.get(f"/batches/{default.pk}/").content.decode()
    assert "providers (the default set):" in html and "pagespeed" not in html.split('id="batch-providers"')[1][:600]
    chosen = finished_batch(["https://a.example.org/2"], [{"page.status": 200}], providers=["page", "pagespeed"])
    html = client.get(f"/batches/{chosen.pk}/").content.decode()
    shown = re.sub(r"\s+", " ", html.split('id="batch-providers">')[1].split("</div>")[0]).strip()
    assert shown == "providers: page, pagespeed"
