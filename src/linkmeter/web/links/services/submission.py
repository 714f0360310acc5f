"""Submitting URLs: validation, reuse of young analyses, queueing, and the dispatch once committed."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.contrib.auth.models import AnonymousUser, User
from django.db import transaction
from django.utils import timezone

from linkmeter.engine.ssrf import AllowList, FetchRefused, blocked_reason, host_address
from linkmeter.engine.urls import InvalidURL, parse_url
from linkmeter.providers.registry import DEFAULT_NAMES, PROVIDER_CLASSES, PROVIDER_NAMES
from linkmeter.web.links.models import Analysis, AnalysisStatus, Batch, BatchItem, BatchSource, CallbackStatus, Link
from linkmeter.web.links.services.entries import link_entry_refresh
from linkmeter.web.links.services.errors import ServiceError
from linkmeter.web.runtime import callbacks_supported, get_dispatcher

PRIORITY_SINGLE = 10  # single URLs and small submissions run ahead of bulk batches
PRIORITY_BULK = 0
SMALL_SUBMISSION = 10


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
    priority: int | None = None,
) -> Submission:
    """Validate every URL (the bad ones are listed with index and reason, the good ones accepted), reuse
    analyses younger than ``max_age`` unless ``fresh``, queue the rest, and commit before dispatching.
    ``callback_url``: POST a signed summary there when the batch closes (Celery mode only). ``priority``: the
    analyses' (default: PRIORITY_SINGLE for a small submission, else PRIORITY_BULK; the plans set their own)."""
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
    if priority is None:
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
        link_entry_refresh(link_ids=(link.pk for link in links.values()))
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
        # [] stands for the default set, on either side: an analysis of the default set answers no request
        # for a provider outside it (pagespeed), and an explicit list covering the default set answers one.
        if _selection(providers) <= _selection(analysis.providers):
            found[analysis.link_id] = analysis
    return found


def _selection(providers: Sequence[str]) -> set[str]:
    return set(providers) if providers else set(DEFAULT_NAMES)


def analysis_reanalyse(*, link: Link, providers: Sequence[str] | None = None,
                       user: User | AnonymousUser | None = None) -> Submission:
    return analysis_submit(urls=[link.url], providers=providers, fresh=True, source=BatchSource.API, user=user)
