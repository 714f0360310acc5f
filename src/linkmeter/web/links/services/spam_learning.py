"""The spam model's life in the database: the shipped one seeded as version 1, candidates trained from the shipped
set plus every label, promoted only when the candidate check passes, rolled back, and stored links re-scored.

A job (training or rescoring) is a ``SpamJob`` row; the partial unique constraint lets one run at a time of each
kind in every mode (the lock). Jobs start after their row commits: through the runtime's ``spam_jobs`` (the
Celery mode sends a task) or else on a thread of this process (embedded: off the event loop).
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Sequence
from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.db import IntegrityError, close_old_connections, connection, transaction
from django.db.models import F, Max, Min
from django.utils import timezone

from linkmeter.indicators.spam import learning, training
from linkmeter.indicators.spam import model as spam_model
from linkmeter.indicators.spam.scoring import score
from linkmeter.indicators.spam.settings import threshold
from linkmeter.web import runtime
from linkmeter.web.links.models import (
    FINAL_STATUSES,
    Analysis,
    Feedback,
    FeedbackLabel,
    ProviderResult,
    SpamJob,
    SpamJobKind,
    SpamJobStatus,
    SpamModel,
)
from linkmeter.web.links.services.entries import link_entry_refresh
from linkmeter.web.links.services.errors import ServiceError

log = logging.getLogger(__name__)

Progress = Callable[[str, int, int], None]  # (message, done, total)
STALE_JOB = timedelta(hours=2)  # a running job without a heartbeat this long died with its process
RESCORE_CHUNK = 500


def spam_model_active() -> SpamModel:
    """The active model; on first use the shipped artifact becomes version 1 (active)."""
    found = SpamModel.objects.filter(active=True).first()
    if found is not None:
        return found
    shipped = spam_model.load_shipped()
    try:
        with transaction.atomic():
            if not SpamModel.objects.exists():
                return SpamModel.objects.create(
                    version=1, algorithm=shipped.algorithm, schema=dict(shipped.schema), figures=dict(shipped.figures),
                    artifact=shipped.to_json(), active=True, activated_at=timezone.now())
    except IntegrityError:
        pass  # another process seeded it at the same time
    found = SpamModel.objects.filter(active=True).first()
    if found is None:
        raise ServiceError("no_active_model", "no spam model is active (promote one: linkmeter spam promote VERSION)")
    return found


def artifact_of(row: SpamModel) -> spam_model.Artifact:
    return spam_model.Artifact.from_json(row.artifact)


def labels_all(extra: Sequence[learning.Label] = ()) -> list[learning.Label]:
    """Every stored label as the learning code reads it (with the link's stored signals when it was analysed),
    plus ``extra`` (a CSV's rows taken as labels)."""
    rows = (Feedback.objects.select_related("link", "link__latest_analysis")
            .only("label", "labeller", "source", "updated_at", "link__url", "link__latest_analysis__signals",
                  "link__latest_analysis__status"))
    found = []
    for row in rows.iterator(chunk_size=2000):
        analysis = row.link.latest_analysis
        signals = analysis.signals if analysis is not None and analysis.status in FINAL_STATUSES else None
        found.append(learning.Label(url=row.link.url, is_spam=row.label == FeedbackLabel.SPAM,
                                    labeller=row.labeller, time=row.updated_at, source=row.source, signals=signals))
    return [*found, *extra]


def shipped_examples() -> list[training.Example]:
    """The labelled set a retrain starts from (LINKMETER_SPAM_DATA). Raises ServiceError without it."""
    path = settings.LINKMETER["SPAM_DATA"]
    if not path:
        raise ServiceError("no_training_data", "training needs the shipped labelled set: set LINKMETER_SPAM_DATA to "
                                               "its CSV (url, status), e.g. web-page-phishing-2021.csv.gz")
    try:
        return training.load_labelled(Path(path))
    except (OSError, training.DataError) as exc:
        raise ServiceError("bad_training_data", f"cannot read LINKMETER_SPAM_DATA: {exc}", {"path": path}) from exc


# --- jobs: the lock, progress, start ---

def job_start(*, kind: str, trigger: str, promote: bool = False, model: SpamModel | None = None,
              background: bool = True) -> SpamJob:
    """Create a running job (the lock: ServiceError(job_running) when one of its kind runs) and, when
    ``background``, start it after commit."""
    SpamJob.objects.filter(kind=kind, status=SpamJobStatus.RUNNING,
                           heartbeat_at__lt=timezone.now() - STALE_JOB).update(
        status=SpamJobStatus.FAILED, message="abandoned (no progress for two hours)", finished_at=timezone.now())
    try:
        with transaction.atomic():
            job = SpamJob.objects.create(kind=kind, trigger=trigger, promote=promote, model=model,
                                         message="waiting to start")
    except IntegrityError as exc:
        running = SpamJob.objects.filter(kind=kind, status=SpamJobStatus.RUNNING).first()
        raise ServiceError("job_running", f"a spam {kind} job is already running",
                           {"job_id": running.pk if running else None}) from exc
    if background:
        transaction.on_commit(lambda: _launch(job.pk))
    return job


def _launch(job_id: int) -> None:
    installed = runtime.installed()
    starter = installed.spam_jobs if installed is not None else None
    if starter is not None:
        starter(job_id)
        return
    threading.Thread(target=_run_in_thread, args=(job_id,), name=f"spam-job-{job_id}", daemon=True).start()


def _run_in_thread(job_id: int) -> None:
    try:
        job_run(job_id)
    finally:
        connection.close()


def job_run(job_id: int, progress: Progress | None = None, extra: Sequence[learning.Label] = ()) -> SpamJob:
    """Run job ``job_id`` to its end (training: a candidate, promoted when asked and it passes; rescoring)."""
    close_old_connections()
    job = SpamJob.objects.get(pk=job_id)

    def say(message: str, done: int = 0, total: int = 0) -> None:
        SpamJob.objects.filter(pk=job_id).update(message=message[:500], done=done, total=total,
                                                 heartbeat_at=timezone.now())
        if progress is not None:
            progress(message, done, total)

    try:
        if job.kind == SpamJobKind.TRAIN:
            candidate = spam_model_train(progress=say, extra=extra)
            SpamJob.objects.filter(pk=job_id).update(model=candidate)
            if job.promote:
                _release(job_id, SpamJobStatus.DONE, candidate.check_message)
                spam_model_promote(version=candidate.version, progress=progress)
            message = f"version {candidate.version}: {candidate.check_message}"
        else:
            target = job.model or spam_model_active()
            count = links_rescore(model=target, progress=say)
            message = f"re-scored {count} links with version {target.version}"
        _release(job_id, SpamJobStatus.DONE, message)
    except ServiceError as exc:
        _release(job_id, SpamJobStatus.FAILED, exc.message)
        raise
    except Exception as exc:
        log.exception("spam job %s failed", job_id)
        _release(job_id, SpamJobStatus.FAILED, f"{type(exc).__name__}: {exc}")
        raise
    return SpamJob.objects.get(pk=job_id)


def _release(job_id: int, status: str, message: str) -> None:
    SpamJob.objects.filter(pk=job_id, status=SpamJobStatus.RUNNING).update(
        status=status, message=message[:500], finished_at=timezone.now())


# --- training, promotion, rollback ---

def spam_model_train(*, progress: Progress | None = None, extra: Sequence[learning.Label] = (),
                     examples: Sequence[training.Example] | None = None) -> SpamModel:
    """A candidate from the shipped set plus every label (the newest held out by time and domain for the
    check), stored inactive with its figures and the check's verdict."""
    say = progress or (lambda *_: None)
    shipped = list(examples) if examples is not None else shipped_examples()
    active_row = spam_model_active()
    active = artifact_of(active_row)
    labels = labels_all(extra)
    fit_labels, recent = learning.holdout(labels) if labels else ([], [])
    version = (SpamModel.objects.aggregate(top=Max("version"))["top"] or 0) + 1
    say(f"training version {version} on {len(shipped)} shipped examples and {len(fit_labels)} labels", 0, 3)
    candidate = training.train(shipped, fit_labels, version=str(version), parent=str(active_row.version),
                               provenance={"labels_held_out": len(recent)},
                               progress=lambda text: say(text, 1, 3))
    say("checking the candidate against the active model", 2, 3)
    shipped_test = [(e.url, e.is_spam) for e in training.test_split(shipped)]
    check = learning.check_candidate(learning.adapt(candidate, fit_labels), learning.adapt(active, fit_labels),
                                     recent, shipped_test, threshold=threshold(_environ()))
    ids = Feedback.objects.aggregate(first=Min("id"), last=Max("id"))
    figures = {**dict(candidate.figures), "check": check.figures}
    row = SpamModel.objects.create(
        version=version, parent=active_row, algorithm=candidate.algorithm, schema=dict(candidate.schema),
        labels_seen=len(labels), labels_first_id=ids["first"], labels_last_id=ids["last"], figures=figures,
        check_passed=check.passed, check_message=check.message + (f" (stopped by {check.stopped_by})"
                                                                  if check.stopped_by else ""),
        artifact=candidate.to_json())
    say(f"version {version}: {row.check_message}", 3, 3)
    return row


def spam_model_promote(*, version: int, force: bool = False, progress: Progress | None = None,
                       background: bool = True) -> SpamModel:
    """Make ``version`` active (refused when its candidate check failed, naming the figure, unless ``force``);
    stored links are then re-scored (a background job; in-line when not ``background``)."""
    row = SpamModel.objects.filter(version=version).first()
    if row is None:
        raise ServiceError("not_found", f"there is no spam model version {version}", {"version": version})
    if row.check_passed is False and not force:
        raise ServiceError("check_failed", f"version {version} did not pass the candidate check: {row.check_message}",
                           {"version": version, "stopped_by": (row.figures.get("check") and row.check_message)})
    _activate(row)
    _start_rescore(row, progress, background)
    return row


def spam_model_rollback(*, progress: Progress | None = None, background: bool = True) -> SpamModel:
    """Make the previously active model active again."""
    current = spam_model_active()
    previous = (SpamModel.objects.exclude(pk=current.pk).filter(activated_at__isnull=False)
                .order_by("-activated_at", "-version").first())
    if previous is None:
        raise ServiceError("no_previous_model", f"version {current.version} is the only model ever active")
    _activate(previous)
    _start_rescore(previous, progress, background)
    return previous


def _activate(row: SpamModel) -> None:
    with transaction.atomic():
        SpamModel.objects.filter(active=True).exclude(pk=row.pk).update(active=False)
        SpamModel.objects.filter(pk=row.pk).update(active=True, activated_at=timezone.now())
    row.refresh_from_db()
    transaction.on_commit(scoring_changed)


def _start_rescore(row: SpamModel, progress: Progress | None, background: bool) -> None:
    try:
        job = job_start(kind=SpamJobKind.RESCORE, trigger="promote", model=row, background=background)
    except ServiceError:
        log.warning("a rescoring job is already running; version %s re-scores the rest on the next one", row.version)
        return
    if not background:
        job_run(job.pk, progress)


# --- rescoring ---

def links_rescore(*, model: SpamModel, progress: Progress | None = None) -> int:
    """Re-score every link's latest final analysis from its stored signals with ``model`` (plus the labels'
    adaptation layers): no provider is called. Returns how many were re-scored."""
    say = progress or (lambda *_: None)
    artifact = learning.adapt(artifact_of(model), labels_all())
    cut = threshold(_environ())
    now = timezone.now()
    query = Analysis.objects.filter(link__latest_analysis=F("pk"), status__in=list(FINAL_STATUSES))
    total = query.count()
    done = 0
    say(f"re-scoring {total} links with version {model.version}", 0, total)
    last = 0
    while True:
        chunk = list(query.filter(pk__gt=last).order_by("pk").select_related("link")[:RESCORE_CHUNK])
        if not chunk:
            break
        results = {r.analysis_id: r for r in ProviderResult.objects.filter(analysis__in=chunk, provider="spam")}
        changed_results = []
        for analysis in chunk:
            verdict = score(analysis.link.url, analysis.signals, artifact=artifact, threshold=cut, now=now).signals()
            analysis.signals = {**analysis.signals, **verdict}
            result = results.get(analysis.pk)
            if result is not None:
                result.signals = verdict
                changed_results.append(result)
        with transaction.atomic():
            Analysis.objects.bulk_update(chunk, ["signals"])
            ProviderResult.objects.bulk_update(changed_results, ["signals"])
            link_entry_refresh(link_ids=(analysis.link_id for analysis in chunk))
        done += len(chunk)
        last = chunk[-1].pk
        say(f"re-scored {done} of {total} links with version {model.version}", done, total)
    return done


# --- labels: retrain every N ---

def labels_changed() -> None:
    """After labels commit: scoring picks them up, and LINKMETER_SPAM_RETRAIN_LABELS new ones start a retrain."""
    scoring_changed()
    active = SpamModel.objects.filter(active=True).first()
    if active is None:
        return
    latest = SpamModel.objects.order_by("-created_at").values_list("created_at", flat=True).first()
    fresh = Feedback.objects.filter(updated_at__gt=latest).count() if latest else Feedback.objects.count()
    if fresh >= settings.LINKMETER["SPAM_RETRAIN_LABELS"] and settings.LINKMETER["SPAM_DATA"]:
        with contextlib.suppress(ServiceError):  # one is running: it or the next one learns these labels
            job_start(kind=SpamJobKind.TRAIN, trigger="labels", promote=True)


def retrain_if_due(age: timedelta = timedelta(days=1)) -> SpamJob | None:
    """The daily retrain: started when the labelled set is configured and neither a training nor an activation
    happened for ``age``."""
    if not settings.LINKMETER["SPAM_DATA"]:
        return None
    since = timezone.now() - age
    active = spam_model_active()
    if (active.activated_at and active.activated_at > since) or SpamJob.objects.filter(
            kind=SpamJobKind.TRAIN, started_at__gt=since).exists():
        return None
    try:
        return job_start(kind=SpamJobKind.TRAIN, trigger="daily", promote=True)
    except ServiceError:
        return None


_listeners: list[Callable[[], None]] = []


def on_scoring_changed(listener: Callable[[], None]) -> None:
    """Call ``listener`` whenever the active model or the labels change in this process (the scoring source)."""
    _listeners.append(listener)


def scoring_changed() -> None:
    for listener in list(_listeners):
        listener()


def _environ() -> dict[str, str]:
    import os

    return dict(os.environ)
