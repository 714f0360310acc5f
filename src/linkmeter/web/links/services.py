"""The only code that writes links, analyses, results, batches and feedback."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.contrib.auth.models import AnonymousUser, User
from django.db import transaction
from django.db.models import Exists, F, OuterRef, Q, Subquery
from django.utils import timezone

from linkmeter.engine.results import UrlResult
from linkmeter.engine.ssrf import AllowList, FetchRefused, blocked_reason, host_address
from linkmeter.engine.urls import InvalidURL, parse_url
from linkmeter.providers.registry import PROVIDER_CLASSES
from linkmeter.web.jobs.dispatch import callbacks_supported, get_dispatcher
from linkmeter.web.links import bulkwrite
from linkmeter.web.links.models import (
    FINAL_STATUSES,
    Analysis,
    AnalysisStatus,
    Batch,
    BatchItem,
    BatchSource,
    CallbackStatus,
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
    """The shortest cache TTL among the providers asked for (the default set when none named), in seconds."""
    classes = [cls for cls in PROVIDER_CLASSES if (cls.name in providers if providers else cls.in_default_set)]
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
    callback_url: str = "",
) -> Submission:
    """Validate every URL (the bad ones are listed with index and reason, the good ones accepted), reuse
    analyses younger than ``max_age`` unless ``fresh``, queue the rest, and commit before dispatching.
    ``callback_url``: POST a signed summary there when the batch closes (Celery mode only)."""
    limits = settings.LINKMETER
    if not urls:
        raise ServiceError("no_urls", "no URLs given")
    callback = validate_callback_url(callback_url) if callback_url else ""
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
                                     total=len(valid), invalid=[i.as_dict() for i in invalid], owner=requester,
                                     callback_url=callback,
                                     callback_status=CallbackStatus.PENDING if callback else CallbackStatus.NONE)
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
        batch_id = batch.pk
        transaction.on_commit(lambda: get_dispatcher().enqueue(queued, priority=priority, batch_id=batch_id))
    return Submission(batch=batch, analyses=analyses, invalid=invalid, reused=reused, queued=queued)


def validate_callback_url(url: str) -> str:
    """An http(s) URL with a host, no credentials, and not an IP literal the SSRF guard refuses (host names
    are checked when the webhook is sent, against the addresses they resolve to)."""
    if not callbacks_supported():
        raise ServiceError("callbacks_unavailable",
                           "callback_url needs the Celery workers (LINKMETER_BROKER_URL) and a "
                           "LINKMETER_WEBHOOK_SECRET to sign with")
    max_length = settings.LINKMETER["MAX_URL_LENGTH"]
    if not isinstance(url, str) or len(url) > max_length:
        raise ServiceError("invalid_callback_url", f"callback_url must be a URL of at most {max_length} characters")
    try:
        parts = urlsplit(url.strip())
        host = parts.hostname or ""
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError as exc:
        raise ServiceError("invalid_callback_url", f"callback_url cannot be parsed: {exc}") from exc
    if parts.scheme not in ("http", "https") or not host:
        raise ServiceError("invalid_callback_url", "callback_url must be an http:// or https:// URL with a host")
    if parts.username is not None or parts.password is not None:
        raise ServiceError("invalid_callback_url",
                           "callback_url must not contain credentials (they would be shown with the batch)")
    try:
        ip = host_address(host)
    except FetchRefused as exc:
        raise ServiceError("invalid_callback_url", exc.message) from exc
    if ip is not None:
        reason = blocked_reason(ip)
        allow = AllowList.parse(settings.FETCH_ALLOW)  # checked when the settings were read
        if reason is not None and not allow.allows_address(ip):
            raise ServiceError("blocked_callback_url", f"callback_url points at {reason} address {ip}",
                               {"address": str(ip), "reason": reason})
    return url.strip()


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
    batch_id: int | None = None  # the submission that queued it (for log lines)
    priority: int = 0  # higher runs first (a worker's URL slots go to the highest waiting)


def analysis_claim_work(*, limit: int, deadline_seconds: float) -> list[ClaimedWork]:
    """The same claim as ``analysis_claim``, answered with only what running needs (no model instances:
    the embedded runner claims several times a second), highest priority first."""
    with transaction.atomic():
        ids, now = _claim_queued(limit, deadline_seconds)
        if not ids:
            return []
        first_batch = BatchItem.objects.filter(analysis=OuterRef("pk")).order_by("batch_id").values("batch_id")[:1]
        rows = (Analysis.objects.filter(id__in=ids, status=AnalysisStatus.RUNNING, started_at=now)
                .annotate(batch_id=Subquery(first_batch))
                .order_by("-priority", "id").values_list("id", "link__url", "providers", "batch_id", "priority"))
        return [ClaimedWork(pk, url, tuple(providers or ()), batch, priority)
                for pk, url, providers, batch, priority in rows]


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


def analyses_claim_ids(*, analysis_ids: Sequence[int], deadline_seconds: float,
                       takeover: bool = False) -> list[ClaimedWork]:
    """Move these analyses to running for one worker (a Celery chunk), atomically, and return what running
    them needs, highest priority first. Claimed: the queued ones, and running ones whose deadline has
    passed (their worker is gone); with ``takeover`` (a redelivered or retried chunk: its previous holder
    died or gave up) every running one too. Final analyses are never claimed, so a chunk delivered twice
    repeats no finished work; a row is claimed by one worker at a time (row locks on PostgreSQL, the
    write lock on SQLite)."""
    if not analysis_ids:
        return []
    now = timezone.now()
    claimable = Q(status=AnalysisStatus.QUEUED)
    claimable |= Q(status=AnalysisStatus.RUNNING) if takeover else Q(status=AnalysisStatus.RUNNING,
                                                                        deadline_at__lt=now)
    with transaction.atomic():
        # FOR UPDATE: a concurrent claimer waits for our commit, then sees the rows running and passes.
        ids = list(Analysis.objects.select_for_update().filter(claimable, id__in=set(analysis_ids))
                   .order_by("id").values_list("id", flat=True))
        if not ids:
            return []
        Analysis.objects.filter(id__in=ids).update(
            status=AnalysisStatus.RUNNING, started_at=now, attempts=F("attempts") + 1,
            deadline_at=now + timedelta(seconds=deadline_seconds),
        )
        first_batch = BatchItem.objects.filter(analysis=OuterRef("pk")).order_by("batch_id").values("batch_id")[:1]
        rows = (Analysis.objects.filter(id__in=ids).annotate(batch_id=Subquery(first_batch))
                .order_by("-priority", "id").values_list("id", "link__url", "providers", "batch_id", "priority"))
        return [ClaimedWork(pk, url, tuple(providers or ()), batch, priority)
                for pk, url, providers, batch, priority in rows]


def analyses_complete(*, outcomes: Sequence[tuple[int, UrlResult]]) -> int:
    """Store finished analyses in one transaction; idempotent (an analysis already final is left alone,
    a provider result is written once). Returns how many analyses were stored."""
    if not outcomes:
        return 0
    now = timezone.now()
    by_id = dict(outcomes)
    with transaction.atomic():
        open_links = dict(Analysis.objects.filter(id__in=list(by_id)).exclude(status__in=list(FINAL_STATUSES))
                          .values_list("id", "link_id"))
        finished = [(pk, by_id[pk]) for pk in sorted(open_links)]
        bulkwrite.insert_provider_results(finished, now)
        bulkwrite.update_analyses(finished, now)
        _point_links_at_latest(set(open_links.values()))
        _close_finished_batches(set(open_links), now)
    return len(open_links)


def analysis_fail(*, analysis_ids: Sequence[int], reason: str) -> int:
    """Fail analyses that cannot finish (e.g. they outlived their deadline twice)."""
    now = timezone.now()
    with transaction.atomic():
        ids = list(Analysis.objects.filter(id__in=analysis_ids,
                                           status__in=[AnalysisStatus.QUEUED, AnalysisStatus.RUNNING])
                   .values_list("id", flat=True))
        Analysis.objects.filter(id__in=ids).update(status=AnalysisStatus.FAILED, finished_at=now,
                                                   error=reason[:2000])
        _point_links_at_latest(set(Analysis.objects.filter(id__in=ids).values_list("link_id", flat=True)))
        _close_finished_batches(set(ids), now)
    return len(ids)


def analysis_requeue(*, analysis_ids: Sequence[int]) -> int:
    """Put running analyses back in the queue (after a restart, or by the watchdog)."""
    return Analysis.objects.filter(id__in=analysis_ids, status=AnalysisStatus.RUNNING).update(
        status=AnalysisStatus.QUEUED, started_at=None, deadline_at=None)


def analyses_recover(*, max_attempts: int = 2, grace_seconds: float = 30.0) -> tuple[int, int]:
    """The watchdog: running analyses past their deadline plus grace are re-queued, or failed once they
    have been started ``max_attempts`` times. Returns (requeued, failed)."""
    recovered = analyses_recover_ids(max_attempts=max_attempts, grace_seconds=grace_seconds)
    return len(recovered.requeued), recovered.failed


@dataclass(frozen=True, slots=True)
class Recovered:
    requeued: list[int]  # back in the queue: whoever runs them must be told (Celery: dispatch them again)
    failed: int


def analyses_recover_ids(*, max_attempts: int = 2, grace_seconds: float = 30.0) -> Recovered:
    """``analyses_recover``, answering which analyses went back to the queue."""
    cutoff = timezone.now() - timedelta(seconds=grace_seconds)
    stale = Analysis.objects.filter(status=AnalysisStatus.RUNNING, deadline_at__lt=cutoff)
    retry = list(stale.filter(attempts__lt=max_attempts).values_list("id", flat=True))
    give_up = list(stale.filter(attempts__gte=max_attempts).values_list("id", flat=True))
    analysis_requeue(analysis_ids=retry)
    failed = analysis_fail(analysis_ids=give_up, reason="outlived its deadline twice (worker lost?)")
    requeued = list(Analysis.objects.filter(id__in=retry, status=AnalysisStatus.QUEUED).values_list("id", flat=True))
    return Recovered(requeued=requeued, failed=failed)


@dataclass(frozen=True, slots=True)
class BatchClosing:
    finished: bool  # every analysis of the batch is final (finished_at is set)
    send_webhook: bool  # this call moved the webhook from pending to sending: deliver it now


def batch_close(*, batch_id: int) -> BatchClosing:
    """Close a batch whose analyses are all final: its finish time, and the start of its webhook (once:
    of concurrent closers, one gets ``send_webhook``). A batch with work left stays open; closing it is
    idempotent."""
    with transaction.atomic():
        batch = Batch.objects.select_for_update().filter(pk=batch_id).first()
        if batch is None:
            return BatchClosing(finished=False, send_webhook=False)
        pending = BatchItem.objects.filter(batch_id=batch_id).exclude(analysis__status__in=list(FINAL_STATUSES))
        if pending.exists():
            return BatchClosing(finished=False, send_webhook=False)
        fields = []
        if batch.finished_at is None:
            batch.finished_at = timezone.now()
            fields.append("finished_at")
        send = batch.callback_status == CallbackStatus.PENDING
        if send:
            batch.callback_status = CallbackStatus.SENDING
            fields.append("callback_status")
        if fields:
            batch.save(update_fields=fields)
        return BatchClosing(finished=True, send_webhook=send)


@dataclass(frozen=True, slots=True)
class WebhookAttempt:
    attempts: int  # tries made so far
    status: str  # CallbackStatus: sending (try again later), delivered or failed; "" if it was not being sent


def batch_webhook_record(*, batch_id: int, delivered: bool, error: str = "", retryable: bool = True,
                         max_tries: int = 8) -> WebhookAttempt:
    """Record one delivery try of a batch's webhook. It ends delivered, or failed when the error is not
    worth retrying or ``max_tries`` tries were made; otherwise it stays sending. Only a webhook being
    sent is changed."""
    with transaction.atomic():
        batch = Batch.objects.select_for_update().filter(pk=batch_id, callback_status=CallbackStatus.SENDING).first()
        if batch is None:
            return WebhookAttempt(0, "")
        batch.callback_attempts += 1
        batch.callback_last_error = "" if delivered else error[:2000]
        if delivered:
            batch.callback_status = CallbackStatus.DELIVERED
            batch.callback_sent_at = timezone.now()
        elif not retryable or batch.callback_attempts >= max_tries:
            batch.callback_status = CallbackStatus.FAILED
        batch.save(update_fields=["callback_attempts", "callback_last_error", "callback_status", "callback_sent_at"])
        return WebhookAttempt(batch.callback_attempts, batch.callback_status)


def batch_webhook_reset(*, batch_id: int) -> None:
    """A webhook whose next try could not be scheduled (broker down) goes back to pending: the sweeper
    starts it again."""
    Batch.objects.filter(pk=batch_id, callback_status=CallbackStatus.SENDING).update(
        callback_status=CallbackStatus.PENDING)


def analysis_reanalyse(*, link: Link, providers: Sequence[str] | None = None,
                       user: User | AnonymousUser | None = None) -> Submission:
    return analysis_submit(urls=[link.url], providers=providers, fresh=True, source=BatchSource.API, user=user)


def feedback_create(*, link: Link, label: str, user: User | AnonymousUser | None = None) -> Feedback:
    if label not in FeedbackLabel.values:
        raise ServiceError("invalid_label", f"label must be one of {', '.join(FeedbackLabel.values)}",
                           {"given": label})
    requester = user if isinstance(user, User) else None
    return Feedback.objects.create(link=link, label=label, analysis=link.latest_analysis, user=requester)


def _point_links_at_latest(link_ids: set[int]) -> None:
    """Each of these links (of just finished analyses) points at its newest final analysis: one statement."""
    if not link_ids:
        return
    newest = (Analysis.objects.filter(link=OuterRef("pk"), status__in=list(FINAL_STATUSES))
              .order_by("-id").values("id")[:1])
    Link.objects.filter(pk__in=link_ids).update(latest_analysis=Subquery(newest))


def _close_finished_batches(analysis_ids: set[int], now: datetime) -> None:
    """Set the finish time of the open batches of these analyses that have nothing left to run: one
    statement."""
    if not analysis_ids:
        return
    pending = BatchItem.objects.filter(batch_id=OuterRef("pk")).exclude(analysis__status__in=list(FINAL_STATUSES))
    (Batch.objects.filter(pk__in=BatchItem.objects.filter(analysis_id__in=analysis_ids).values("batch_id"),
                          finished_at__isnull=True)
     .exclude(Exists(pending)).update(finished_at=now))
