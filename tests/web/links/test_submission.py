"""Submission: bad input of every kind, too many URLs, and the reuse of young analyses."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from linkmeter.web.links.models import Analysis, AnalysisStatus, Batch
from linkmeter.web.links.services.errors import ServiceError
from linkmeter.web.links.services.queue import analysis_claim_next, analysis_complete
from linkmeter.web.links.services.submission import analysis_submit
from tests.web.links.conftest import finished

pytestmark = pytest.mark.django_db(transaction=True)


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
    claimed = analysis_claim_next(limit=10, deadline_seconds=60)
    analysis_complete(outcomes=[(claimed[0].analysis_id, finished("https://example.org/a"))])
    again = analysis_submit(urls=["https://example.org/a"])
    assert again.reused == 1 and again.analyses[0].pk == first.analyses[0].pk and again.queued == []
    assert Batch.objects.get(pk=again.batch.pk).finished_at is not None
    fresh = analysis_submit(urls=["https://example.org/a"], fresh=True)
    assert fresh.reused == 0 and fresh.analyses[0].pk != first.analyses[0].pk


def test_an_old_analysis_is_not_reused() -> None:
    analysis_submit(urls=["https://example.org/a"], providers=["page"])
    claimed = analysis_claim_next(limit=10, deadline_seconds=60)
    analysis_complete(outcomes=[(claimed[0].analysis_id, finished("https://example.org/a"))])
    Analysis.objects.update(finished_at=timezone.now() - timedelta(hours=1))
    assert analysis_submit(urls=["https://example.org/a"], providers=["page"]).reused == 0


def test_an_analysis_of_the_default_set_does_not_answer_a_request_for_pagespeed() -> None:
    analysis_submit(urls=["https://example.org/a"])
    claimed = analysis_claim_next(limit=10, deadline_seconds=60)
    analysis_complete(outcomes=[(claimed[0].analysis_id, finished("https://example.org/a"))])
    assert analysis_submit(urls=["https://example.org/a"], providers=["page", "rdap"]).reused == 1  # in the set
    asked = analysis_submit(urls=["https://example.org/a"], providers=["page", "pagespeed"])
    assert asked.reused == 0 and len(asked.queued) == 1  # pagespeed never ran for it
