"""The only code that writes links, analyses, results, batches and feedback."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AnonymousUser, User
from django.db import transaction
from django.db.models import F, OuterRef, Subquery
from django.utils import timezone

from linkmeter.engine.results import UrlResult
from linkmeter.engine.urls import InvalidURL, parse_url
from linkmeter.providers.registry import PROVIDER_CLASSES
from linkmeter.web.jobs.dispatch import get_dispatcher
from linkmeter.web.links import bulkwrite
from linkmeter.web.links.models import (
    FINAL_STATUSES,
    Analysis,
    AnalysisStatus,
    Batch,
    BatchItem,
    BatchSource,
    Feedback,
    FeedbackLabel,
    Link,
)

PROVIDER_NAMES = tuple(cls.name for cls in PROVIDER_CLASSES)
PRIORITY_SINGLE = 10  # single URLs and small submissions run ahead of bulk batches
PRIORITY_BULK = 0
SMALL_SUBMISSION = 10


class ServiceError(ValueError):
    """Bad input to a service: ``code`` is machine-readable, ``details`` says what exactly."""

    def __init__(self, code: str, message: str, details: Any = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.details = details


@dataclass(frozen=True, slots=True)
class InvalidItem:
    index: int
    input: str
    code: str
    message: str

    def as_dict(self) -> dict[str, Any]:
        return {"index": self.index, "input": self.input, "code": self.code, "message": self.message}


@dataclass(slots=True)
class Submission:
    batch: Batch
    analyses: list[Analysis]
    invalid: list[InvalidItem]
    reused: int = 0
    queued: list[int] = field(default_factory=list)


def validate_providers(providers: Sequence[str] | None) -> list[str]:
    chosen = [p.strip().lower() for p in providers or [] if p and p.strip()]
    unknown = sorted(set(chosen) - set(PROVIDER_NAMES))
    if unknown:
        raise ServiceError("unknown_provider", f"unknown provider(s): {', '.join(unknown)}",
                           {"unknown": unknown, "known": list(PROVIDER_NAMES)})
    return list(dict.fromkeys(chosen))


def default_max_age(providers: Sequence[str]) -> float:
    """The shortest cache TTL among the providers asked for (all when none named), in seconds."""
    classes = [cls for cls in PROVIDER_CLASSES if not providers or cls.name in providers]
    ttls = [cls.policy.cache_ttl for cls in classes if cls.policy.cache_ttl > 0]
    return min(ttls) if ttls else 0.0


def analysis_submit(
    *,
    urls: Sequence[str],
    providers: Sequence[str] | None = None,
    fresh: bool = False,
    name: str = "",
    source: str = BatchSource.API,
    max_age: float | None = None,
    user: User | AnonymousUser | None = None,
) -> Submission:
    """Validate every URL (the bad ones are listed with index and reason, the good ones accepted), reuse
    analyses younger than ``max_age`` unless ``fresh``, queue the rest, and commit before dispatching."""
    limits = settings.LINKMETER
    if not urls:
        raise ServiceError("no_urls", "no URLs given")
    if len(urls) > limits["MAX_URLS_PER_REQUEST"]:
        raise ServiceError("too_many_urls",
                           f"{len(urls)} URLs in one request; the limit is {limits['MAX_URLS_PER_REQUEST']}",
                           {"limit": limits["MAX_URLS_PER_REQUEST"], "given": len(urls)})
    chosen = validate_providers(providers)
    valid: list[tuple[int, str, str]] = []  # (index, normalised url, domain)
    invalid: list[InvalidItem] = []
    for index, raw in enumerate(urls):
        text = raw if isinstance(raw, str) else ""
        try:
            parsed = parse_url(text, max_length=limits["MAX_URL_LENGTH"])
        except InvalidURL as exc:
            shown = text if len(text) <= 200 else text[:197] + "..."
            invalid.append(InvalidItem(index, shown, exc.code, exc.message))
            continue
        valid.append((index, parsed.url, parsed.domain))
    if not valid:
        raise ServiceError("no_valid_urls", "none of the URLs is valid", [i.as_dict() for i in invalid])
    age = default_max_age(chosen) if max_age is None else max_age
    priority = PRIORITY_SINGLE if len(valid) <= SMALL_SUBMISSION else PRIORITY_BULK
    requester = user if isinstance(user, User) else None
    with transaction.atomic():
        links = _links_for({url: domain for _, url, domain in valid})
        reusable = {} if fresh or age <= 0 else _reusable(links.values(), chosen, age)
        batch = Batch.objects.create(name=name[:200], source=source, providers=chosen, fresh=fresh,
                                     total=len(valid), invalid=[i.as_dict() for i in invalid], owner=requester)
        analyses: list[Analysis] = []
        items: list[BatchItem] = []
        created: dict[str, Analysis] = {}
        reused = 0
        for index, url, _ in valid:
            link = links[url]
            analysis = reusable.get(link.pk) or created.get(url)
            is_reused = analysis is not None and link.pk in reusable
            if analysis is None:
                analysis = Analysis(link=link, providers=chosen, priority=priority, requested_by=requester)
                created[url] = analysis
            reused += is_reused
            analyses.append(analysis)
            items.append(BatchItem(batch=batch, analysis=analysis, position=index, reused=is_reused))
        Analysis.objects.bulk_create(list(created.values()))  # sets their ids (SQLite >= 3.35, PostgreSQL)
        BatchItem.objects.bulk_create(items)
        if not created:
            batch.finished_at = timezone.now()
            batch.save(update_fields=["finished_at"])
        queued = [a.pk for a in created.values()]
        transaction.on_commit(lambda: get_dispatcher().enqueue(queued, priority=priority))
    return Submission(batch=batch, analyses=analyses, invalid=invalid, reused=reused, queued=queued)


def _links_for(urls: dict[str, str]) -> dict[str, Link]:
    existing = {link.url: link for link in Link.objects.filter(url__in=list(urls))}
    missing = [Link(url=url, domain=domain) for url, domain in urls.items() if url not in existing]
    if missing:
        Link.objects.bulk_create(missing, ignore_conflicts=True)
        existing.update({link.url: link for link in Link.objects.filter(url__in=[m.url for m in missing])})
    return existing


def _reusable(links: Iterable[Link], providers: list[str], max_age: float) -> dict[int, Analysis]:
    """Per link, its latest final analysis within max_age that asked for at least these providers."""
    since = timezone.now() - timedelta(seconds=max_age)
    found: dict[int, Analysis] = {}
    candidates = Analysis.objects.filter(
        link__in=list(links), finished_at__gte=since,
        status__in=[AnalysisStatus.DONE, AnalysisStatus.PARTIAL],
    ).order_by("link_id", "-finished_at")
    for analysis in candidates:
        if analysis.link_id in found:
            continue
        asked = set(analysis.providers)
        if not asked or (providers and set(providers) <= asked):
            found[analysis.link_id] = analysis
    return found


def analysis_claim(*, limit: int, deadline_seconds: float) -> list[Analysis]:
    """Move up to ``limit`` queued analyses to running (highest priority, oldest first) and return them
    with their links. Only one runner process claims in embedded mode, so select-then-update is safe;
    the conditional update still makes a double claim impossible."""
    with transaction.atomic():
        ids, now = _claim_queued(limit, deadline_seconds)
        if not ids:
            return []
        return list(Analysis.objects.filter(id__in=ids, status=AnalysisStatus.RUNNING, started_at=now)
                    .select_related("link"))


@dataclass(frozen=True, slots=True)
class ClaimedWork:
    analysis_id: int
    url: str
    providers: tuple[str, ...]  # the selection asked for; () = all


def analysis_claim_work(*, limit: int, deadline_seconds: float) -> list[ClaimedWork]:
    """The same claim as ``analysis_claim``, answered with only what running needs (no model instances:
    the embedded runner claims several times a second), highest priority first."""
    with transaction.atomic():
        ids, now = _claim_queued(limit, deadline_seconds)
        if not ids:
            return []
        rows = (Analysis.objects.filter(id__in=ids, status=AnalysisStatus.RUNNING, started_at=now)
                .order_by("-priority", "id").values_list("id", "link__url", "providers"))
        return [ClaimedWork(pk, url, tuple(providers or ())) for pk, url, providers in rows]


def _claim_queued(limit: int, deadline_seconds: float) -> tuple[list[int], datetime]:
    now = timezone.now()
    ids = list(Analysis.objects.filter(status=AnalysisStatus.QUEUED)
               .order_by("-priority", "id").values_list("id", flat=True)[:limit])
    if ids:
        Analysis.objects.filter(id__in=ids, status=AnalysisStatus.QUEUED).update(
            status=AnalysisStatus.RUNNING, started_at=now, attempts=F("attempts") + 1,
            deadline_at=now + timedelta(seconds=deadline_seconds),
        )
    return ids, now


def analyses_complete(*, outcomes: Sequence[tuple[int, UrlResult]]) -> int:
    """Store finished analyses in one transaction; idempotent (an analysis already final is left alone,
    a provider result is written once). Returns how many analyses were stored."""
    if not outcomes:
        return 0
    now = timezone.now()
    by_id = dict(outcomes)
    with transaction.atomic():
        open_ids = set(Analysis.objects.filter(id__in=list(by_id))
                       .exclude(status__in=[AnalysisStatus.DONE, AnalysisStatus.PARTIAL, AnalysisStatus.FAILED])
                       .values_list("id", flat=True))
        finished = [(pk, by_id[pk]) for pk in sorted(open_ids)]
        bulkwrite.insert_provider_results(finished, now)
        bulkwrite.update_analyses(finished, now)
        _point_links_at_latest(Analysis.objects.filter(id__in=open_ids).only("id", "link_id"))
        _close_finished_batches(open_ids, now)
    return len(open_ids)


def analysis_fail(*, analysis_ids: Sequence[int], reason: str) -> int:
    """Fail analyses that cannot finish (e.g. they outlived their deadline twice)."""
    now = timezone.now()
    with transaction.atomic():
        ids = list(Analysis.objects.filter(id__in=analysis_ids,
                                           status__in=[AnalysisStatus.QUEUED, AnalysisStatus.RUNNING])
                   .values_list("id", flat=True))
        Analysis.objects.filter(id__in=ids).update(status=AnalysisStatus.FAILED, finished_at=now,
                                                   error=reason[:2000])
        _point_links_at_latest(Analysis.objects.filter(id__in=ids).select_related("link"))
        _close_finished_batches(set(ids), now)
    return len(ids)


def analysis_requeue(*, analysis_ids: Sequence[int]) -> int:
    """Put running analyses back in the queue (after a restart, or by the watchdog)."""
    return Analysis.objects.filter(id__in=analysis_ids, status=AnalysisStatus.RUNNING).update(
        status=AnalysisStatus.QUEUED, started_at=None, deadline_at=None)


def analyses_recover(*, max_attempts: int = 2, grace_seconds: float = 30.0) -> tuple[int, int]:
    """The watchdog: running analyses past their deadline plus grace are re-queued, or failed once they
    have been started ``max_attempts`` times. Returns (requeued, failed)."""
    cutoff = timezone.now() - timedelta(seconds=grace_seconds)
    stale = Analysis.objects.filter(status=AnalysisStatus.RUNNING, deadline_at__lt=cutoff)
    retry = list(stale.filter(attempts__lt=max_attempts).values_list("id", flat=True))
    give_up = list(stale.filter(attempts__gte=max_attempts).values_list("id", flat=True))
    requeued = analysis_requeue(analysis_ids=retry)
    failed = analysis_fail(analysis_ids=give_up, reason="outlived its deadline twice (worker lost?)")
    return requeued, failed


def analysis_reanalyse(*, link: Link, providers: Sequence[str] | None = None,
                       user: User | AnonymousUser | None = None) -> Submission:
    return analysis_submit(urls=[link.url], providers=providers, fresh=True, source=BatchSource.API, user=user)


def feedback_create(*, link: Link, label: str, user: User | AnonymousUser | None = None) -> Feedback:
    if label not in FeedbackLabel.values:
        raise ServiceError("invalid_label", f"label must be one of {', '.join(FeedbackLabel.values)}",
                           {"given": label})
    requester = user if isinstance(user, User) else None
    return Feedback.objects.create(link=link, label=label, analysis=link.latest_analysis, user=requester)


def _point_links_at_latest(analyses: Iterable[Analysis]) -> None:
    """Each link of these (just finished) analyses points at its newest final analysis: one statement."""
    link_ids = {analysis.link_id for analysis in analyses}
    if not link_ids:
        return
    newest = (Analysis.objects.filter(link=OuterRef("pk"), status__in=list(FINAL_STATUSES))
              .order_by("-id").values("id")[:1])
    Link.objects.filter(pk__in=link_ids).update(latest_analysis=Subquery(newest))


def _close_finished_batches(analysis_ids: set[int], now: datetime) -> None:
    if not analysis_ids:
        return
    batch_ids = set(BatchItem.objects.filter(analysis_id__in=analysis_ids).values_list("batch_id", flat=True))
    for batch_id in batch_ids:
        pending = BatchItem.objects.filter(batch_id=batch_id).exclude(
            analysis__status__in=[AnalysisStatus.DONE, AnalysisStatus.PARTIAL, AnalysisStatus.FAILED]).exists()
        if not pending:
            Batch.objects.filter(pk=batch_id, finished_at__isnull=True).update(finished_at=now)
