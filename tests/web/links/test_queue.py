"""The queue: claims by priority, storing results idempotently, the watchdog."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from linkmeter.engine.results import UrlStatus
from linkmeter.web.links.models import Analysis, Batch, Link, ProviderResult
from linkmeter.web.links.services.queue import Recovered, analysis_claim_next, analysis_complete, analysis_recover
from linkmeter.web.links.services.submission import analysis_submit
from tests.web.links.conftest import finished

pytestmark = pytest.mark.django_db(transaction=True)


def test_claim_takes_the_highest_priority_first_and_only_once() -> None:
    analysis_submit(urls=[f"https://bulk.example.org/{i}" for i in range(20)])
    analysis_submit(urls=["https://single.example.org/"])
    first = analysis_claim_next(limit=1, deadline_seconds=60)
    assert first[0].url == "https://single.example.org/"
    rest = analysis_claim_next(limit=100, deadline_seconds=60)
    assert len(rest) == 20 and analysis_claim_next(limit=100, deadline_seconds=60) == []
    claimed = list(Analysis.objects.filter(pk__in=[work.analysis_id for work in rest]))
    assert len(claimed) == 20 and all(a.attempts == 1 and a.deadline_at is not None for a in claimed)


def test_completing_twice_writes_once() -> None:
    analysis_submit(urls=["https://example.org/a"])
    (work,) = analysis_claim_next(limit=10, deadline_seconds=60)
    assert analysis_complete(outcomes=[(work.analysis_id, finished("https://example.org/a"))]) == 1
    assert analysis_complete(outcomes=[(work.analysis_id, finished("https://example.org/a", UrlStatus.FAILED))]) == 0
    analysis = Analysis.objects.get(pk=work.analysis_id)
    assert analysis.status == "done" and analysis.signals["page.status"] == 200
    assert ProviderResult.objects.filter(analysis=analysis).count() == 2
    link = Link.objects.get(url="https://example.org/a")
    assert link.latest_analysis_id == analysis.pk
    result = ProviderResult.objects.get(analysis=analysis, provider="rdap")
    assert (result.status, result.attempts, result.message) == ("error", 3, "HTTP 503")


def test_the_watchdog_requeues_once_then_fails() -> None:
    analysis_submit(urls=["https://example.org/a"])
    (work,) = analysis_claim_next(limit=10, deadline_seconds=0)
    Analysis.objects.update(deadline_at=timezone.now() - timedelta(minutes=5))
    assert analysis_recover(max_attempts=2, grace_seconds=30) == Recovered(requeued=[work.analysis_id], failed=0)
    analysis_claim_next(limit=10, deadline_seconds=0)
    Analysis.objects.update(deadline_at=timezone.now() - timedelta(minutes=5))
    assert analysis_recover(max_attempts=2, grace_seconds=30) == Recovered(requeued=[], failed=1)
    analysis = Analysis.objects.get(pk=work.analysis_id)
    assert analysis.status == "failed" and "deadline" in analysis.error
    assert Batch.objects.get().finished_at is not None


def test_a_claim_can_give_a_share_to_the_oldest_queued_whatever_their_priority() -> None:
    analysis_submit(urls=[f"https://bulk.example.org/{i}" for i in range(20)], priority=0)
    analysis_submit(urls=[f"https://paid.example.org/{i}" for i in range(5)], priority=6)
    claimed = analysis_claim_next(limit=5, deadline_seconds=60, oldest=1)
    assert sorted(work.url for work in claimed) == sorted(
        ["https://bulk.example.org/0", *[f"https://paid.example.org/{i}" for i in range(4)]])
