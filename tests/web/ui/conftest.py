"""Fixtures for the UI tests: batches whose analyses finished with chosen numbers, without running the engine."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import pytest

from linkmeter.engine.results import CallResult, CallStatus, UrlResult, UrlStatus
from linkmeter.web.links.models import Batch
from linkmeter.web.links.services.queue import analysis_claim_next, analysis_complete
from linkmeter.web.links.services.submission import analysis_submit

Finish = Callable[..., Batch]


def url_result(url: str, signals: dict[str, Any]) -> UrlResult:
    """A finished result: the page provider produced ``signals`` (plus a raw answer), rdap failed."""
    page = {k: v for k, v in signals.items() if k.startswith("page.")}
    calls = {
        "page": CallResult("page", CallStatus.OK, 12.5, 1, "", page, {"status": 200, "body": "<b>raw</b>"}),
        "rdap": CallResult("rdap", CallStatus.ERROR, 3.0, 3, "HTTP 503 <from upstream>", {}, None),
    }
    return UrlResult(url, UrlStatus.PARTIAL, {"url": url, **signals}, calls, 20.0)


@pytest.fixture
def finished_batch() -> Finish:
    """``finished_batch(urls, signals_per_url, finish=n)``: submits the URLs and finishes the first n (all
    by default) with the given signals."""

    def make(urls: Sequence[str], signals: Sequence[dict[str, Any]], *, finish: int | None = None,
             **options: Any) -> Batch:
        submission = analysis_submit(urls=list(urls), **options)
        claimed = {work.url: work for work in analysis_claim_next(limit=10_000, deadline_seconds=60)}
        by_url = dict(zip(urls, signals, strict=True))
        done = list(claimed.items())[:len(claimed) if finish is None else finish]
        analysis_complete(outcomes=[(work.analysis_id, url_result(url, by_url[url])) for url, work in done])
        return Batch.objects.get(pk=submission.batch.pk)

    return make
