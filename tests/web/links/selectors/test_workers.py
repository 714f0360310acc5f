"""The orphan sweep's reading: analyses queued for long with no message are orphans, unless their batch is
still moving (its later chunks wait for its lanes with no message in the queue)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from linkmeter.web.links.models import Analysis, AnalysisStatus
from linkmeter.web.links.selectors.workers import analyses_orphaned
from linkmeter.web.links.services.submission import analysis_submit

pytestmark = pytest.mark.django_db(transaction=True)


def queued_long_ago(prefix: str, count: int) -> list[int]:
    ids = [a.pk for a in analysis_submit(urls=[f"https://{prefix}.example.org/{i}" for i in range(count)],
                                         fresh=True).analyses]
    Analysis.objects.filter(pk__in=ids).update(queued_at=timezone.now() - timedelta(seconds=600))
    return ids


def test_a_batch_with_work_running_or_just_finished_has_no_orphans_and_a_still_one_has() -> None:
    running = queued_long_ago("running", 4)
    Analysis.objects.filter(pk=running[0]).update(status=AnalysisStatus.RUNNING, started_at=timezone.now())
    finished = queued_long_ago("finished", 4)
    Analysis.objects.filter(pk=finished[0]).update(status=AnalysisStatus.DONE, finished_at=timezone.now())
    still = queued_long_ago("still", 3)
    long_done = queued_long_ago("longdone", 3)
    Analysis.objects.filter(pk=long_done[0]).update(status=AnalysisStatus.DONE,
                                                    finished_at=timezone.now() - timedelta(seconds=300))
    orphans = {pk for pk, _ in analyses_orphaned(older_than_seconds=120)}
    assert orphans == set(still) | set(long_done[1:])
