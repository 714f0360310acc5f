"""Helpers for the services' tests: a finished engine result to store."""

from __future__ import annotations

from linkmeter.engine.results import CallResult, CallStatus, UrlResult, UrlStatus


def finished(url: str, status: UrlStatus = UrlStatus.DONE) -> UrlResult:
    calls = {
        "page": CallResult("page", CallStatus.OK, 12.5, 1, "", {"page.status": 200}, {"status": 200}),
        "rdap": CallResult("rdap", CallStatus.ERROR, 3.0, 3, "HTTP 503", {}, None),
    }
    return UrlResult(url, status, {"url": url, "page.status": 200}, calls, 20.0)
