"""Services: submission with bad input of every kind, reuse, storing results idempotently, the watchdog."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from linkmeter.engine.results import CallResult, CallStatus, UrlResult, UrlStatus
from linkmeter.web.links.models import Analysis, AnalysisStatus, Batch, Link, ProviderResult
from linkmeter.web.links.services import (
    ServiceError,
    analyses_complete,
    analyses_recover,
    analysis_claim,
    analysis_submit,
    feedback_create,
)

pytestmark = pytest.mark.django_db(transaction=True)


def finished(url: str, status: UrlStatus = UrlStatus.DONE) -> UrlResult:
    calls = {
        "page": CallResult("page", CallStatus.OK, 12.5, 1, "", {"page.status": 200}, {"status": 200}),
        "rdap": CallResult("rdap", CallStatus.ERROR, 3.0, 3, "HTTP 503", {}, None),
    }
    return UrlResult(url, status, {"url": url, "page.status": 200}, calls, 20.0)


def test_valid_urls_are_accepted_and_bad_ones_listed_with_index_and_reason() -> None:
    submission = analysis_submit(urls=["https://Example.org/a", "example.org/nope", "ftp://x.org/", "",
                                       "https://example.org/b", "https://example.org/a#frag"])
    assert [(i.index, i.code) for i in submission.invalid] == [
        (1, "no_scheme"), (2, "unsupported_scheme"), (3, "empty")]
    assert [a.link.url for a in submission.analyses] == [
        "https://example.org/a", "https://example.org/b", "https://example.org/a"]
    assert len(set(a.pk for a in submission.analyses)) == 2  # a duplicate URL shares one analysis
    batch = Batch.objects.get(pk=submission.batch.pk)
    assert batch.total == 3 and len(batch.invalid) == 3
    assert Analysis.objects.filter(status=AnalysisStatus.QUEUED).count() == 2


@pytest.mark.parametrize(("urls", "providers", "code"), [
    ([], None, "no_urls"),
    (["nope", "also nope"], None, "no_valid_urls"),
    (["https://example.org/"], ["page", "telepathy"], "unknown_provider"),
])
def test_unusable_submissions_are_refused_with_a_code(urls: list[str], providers: list[str] | None,
                                                       code: str) -> None:
    with pytest.raises(ServiceError) as info:
        analysis_submit(urls=urls, providers=providers)
    assert info.value.code == code
    assert Batch.objects.count() == 0


def test_too_many_urls_is_refused(settings: object) -> None:
    settings.LINKMETER = {**settings.LINKMETER, "MAX_URLS_PER_REQUEST": 3}  # type: ignore[attr-defined]
    with pytest.raises(ServiceError) as info:
        analysis_submit(urls=[f"https://example.org/{i}" for i in range(4)])
    assert info.value.code == "too_many_urls" and info.value.details == {"limit": 3, "given": 4}


def test_a_young_analysis_is_reused_unless_fresh() -> None:
    first = analysis_submit(urls=["https://example.org/a"])
    claimed = analysis_claim(limit=10, deadline_seconds=60)
    analyses_complete(outcomes=[(claimed[0].pk, finished("https://example.org/a"))])
    again = analysis_submit(urls=["https://example.org/a"])
    assert again.reused == 1 and again.analyses[0].pk == first.analyses[0].pk and again.queued == []
    assert Batch.objects.get(pk=again.batch.pk).finished_at is not None
    fresh = analysis_submit(urls=["https://example.org/a"], fresh=True)
    assert fresh.reused == 0 and fresh.analyses[0].pk != first.analyses[0].pk


def test_an_old_analysis_is_not_reused() -> None:
    analysis_submit(urls=["https://example.org/a"], providers=["page"])
    claimed = analysis_claim(limit=10, deadline_seconds=60)
    analyses_complete(outcomes=[(claimed[0].pk, finished("https://example.org/a"))])
    Analysis.objects.update(finished_at=timezone.now() - timedelta(hours=1))
    assert analysis_submit(urls=["https://example.org/a"], providers=["page"]).reused == 0


def test_claim_takes_the_highest_priority_first_and_only_once() -> None:
    analysis_submit(urls=[f"https://bulk.example.org/{i}" for i in range(20)])
    analysis_submit(urls=["https://single.example.org/"])
    first = analysis_claim(limit=1, deadline_seconds=60)
    assert first[0].link.url == "https://single.example.org/"
    rest = analysis_claim(limit=100, deadline_seconds=60)
    assert len(rest) == 20 and analysis_claim(limit=100, deadline_seconds=60) == []
    assert all(a.attempts == 1 and a.deadline_at is not None for a in rest)


def test_completing_twice_writes_once() -> None:
    analysis_submit(urls=["https://example.org/a"])
    (analysis,) = analysis_claim(limit=10, deadline_seconds=60)
    assert analyses_complete(outcomes=[(analysis.pk, finished("https://example.org/a"))]) == 1
    assert analyses_complete(outcomes=[(analysis.pk, finished("https://example.org/a", UrlStatus.FAILED))]) == 0
    analysis.refresh_from_db()
    assert analysis.status == "done" and analysis.signals["page.status"] == 200
    assert ProviderResult.objects.filter(analysis=analysis).count() == 2
    link = Link.objects.get(url="https://example.org/a")
    assert link.latest_analysis_id == analysis.pk
    result = ProviderResult.objects.get(analysis=analysis, provider="rdap")
    assert (result.status, result.attempts, result.message) == ("error", 3, "HTTP 503")


def test_the_watchdog_requeues_once_then_fails() -> None:
    analysis_submit(urls=["https://example.org/a"])
    (analysis,) = analysis_claim(limit=10, deadline_seconds=0)
    Analysis.objects.update(deadline_at=timezone.now() - timedelta(minutes=5))
    assert analyses_recover(max_attempts=2, grace_seconds=30) == (1, 0)
    analysis_claim(limit=10, deadline_seconds=0)
    Analysis.objects.update(deadline_at=timezone.now() - timedelta(minutes=5))
    assert analyses_recover(max_attempts=2, grace_seconds=30) == (0, 1)
    analysis.refresh_from_db()
    assert analysis.status == "failed" and "deadline" in analysis.error
    assert Batch.objects.get().finished_at is not None


def test_feedback_is_stored_and_bad_labels_refused() -> None:
    analysis_submit(urls=["https://example.org/a"])
    link = Link.objects.get()
    assert feedback_create(link=link, label="spam").label == "spam"
    with pytest.raises(ServiceError) as info:
        feedback_create(link=link, label="maybe")
    assert info.value.code == "invalid_label"
