"""The OpenAPI document at /api/v1/openapi.json and the interactive docs at /api/docs (local assets only)."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from django.test import Client
from playwright.async_api import async_playwright

CHROMIUM = "/usr/bin/chromium"  # Debian's package (`make test` installs it when missing)
RECORD_CSP = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", e => window.__cspViolations.push(e.violatedDirective));
"""


def test_the_openapi_document_describes_every_endpoint(client: Client) -> None:
    response = client.get("/api/v1/openapi.json")
    assert response.status_code == 200
    schema = response.json()
    assert schema["info"]["title"] == "linkmeter"
    assert set(schema["paths"]) == {
        "/api/v1/analyses", "/api/v1/analyses/{analysis_id}", "/api/v1/batches", "/api/v1/batches/{batch_id}",
        "/api/v1/batches/{batch_id}/results", "/api/v1/links", "/api/v1/links/{link_id}/history",
        "/api/v1/links/{link_id}/feedback", "/api/v1/providers", "/api/v1/usage", "/api/v1/feedback",
        "/api/v1/spam/models", "/api/v1/spam/train"}
    submit = schema["paths"]["/api/v1/analyses"]["post"]
    assert {"200", "202", "413", "422"} <= set(submit["responses"])
    assert [p["name"] for p in submit["parameters"]] == ["wait"]
    results = schema["paths"]["/api/v1/batches/{batch_id}/results"]["get"]["responses"]["200"]
    assert set(results["content"]) == {"application/json", "application/x-ndjson", "text/csv; charset=utf-8"}
    assert "ErrorOut" in schema["components"]["schemas"]
    for path in ("/api/v1/links", "/api/v1/batches"):
        listing = schema["paths"][path]["get"]
        assert {"filter", "sort", "cursor", "format"} & {p["name"] for p in listing["parameters"]}
        assert set(listing["responses"]["200"]["content"]) == set(results["content"])


def test_the_docs_page_loads_the_schema_with_local_assets_only(client: Client) -> None:
    response = client.get("/api/docs")
    assert response.status_code == 200
    html = response.content.decode()
    assert "/api/v1/openapi.json" in html
    sources = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert sources and all(src.startswith("/static/") for src in sources), sources
    for src in sources:
        assert client.get(src).status_code == 200, src


def test_the_openapi_document_has_no_duplicate_keys(client: Client) -> None:
    """Swagger UI parses the document as YAML, which refuses a key given twice (JSON parsers keep the last)."""
    duplicates: list[str] = []

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        keys = [key for key, _ in items]
        duplicates.extend(key for key in set(keys) if keys.count(key) > 1)
        return dict(items)

    json.loads(client.get("/api/v1/openapi.json").content, object_pairs_hook=pairs)
    assert duplicates == []


@pytest.mark.django_db(transaction=True)
async def test_swagger_ui_renders_every_operation_under_our_csp(live_api: str) -> None:
    problems: list[str] = []
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        try:
            page = await browser.new_page()
            await page.add_init_script(RECORD_CSP)
            page.on("console", lambda message: problems.append(message.text) if message.type == "error" else None)
            page.on("pageerror", lambda error: problems.append(str(error)))
            page.on("request", lambda request: None if request.url.startswith(live_api) else problems.append(
                f"off-site request: {request.url}"))
            await page.goto(f"{live_api}/api/docs")
            await page.locator(".opblock").nth(12).wait_for(timeout=15000)
            assert await page.locator(".opblock").count() == 13  # GET /usage, /batches, the spam and bulk feedback ones
            problems.extend(await page.evaluate("window.__cspViolations"))
        finally:
            await browser.close()
    assert problems == []
