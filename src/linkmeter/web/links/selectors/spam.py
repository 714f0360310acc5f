"""Reads for the spam model page and API: the versions with their figures, label counts by source, the jobs."""

from __future__ import annotations

from typing import Any

from django.db.models import Count

from linkmeter.web.links.models import Feedback, SpamJob, SpamModel


def model_summary(row: SpamModel) -> dict[str, Any]:
    return {
        "version": row.version, "parent": row.parent.version if row.parent is not None else None,
        "created_at": row.created_at.isoformat(), "algorithm": row.algorithm, "schema": row.schema,
        "labels_seen": row.labels_seen, "labels_first_id": row.labels_first_id, "labels_last_id": row.labels_last_id,
        "figures": row.figures, "check_passed": row.check_passed, "check_message": row.check_message,
        "active": row.active, "activated_at": row.activated_at.isoformat() if row.activated_at else None,
    }


def models_list() -> list[dict[str, Any]]:
    return [model_summary(row) for row in SpamModel.objects.select_related("parent").order_by("-version")]


def label_counts() -> dict[str, dict[str, int]]:
    """source -> label -> count of the current labels."""
    found: dict[str, dict[str, int]] = {}
    for row in Feedback.objects.values("source", "label").annotate(n=Count("id")).order_by():
        found.setdefault(row["source"], {})[row["label"]] = row["n"]
    return found


def job_summary(job: SpamJob) -> dict[str, Any]:
    return {"id": job.pk, "kind": job.kind, "status": job.status, "trigger": job.trigger, "done": job.done,
            "total": job.total, "message": job.message, "model": job.model.version if job.model else None,
            "started_at": job.started_at.isoformat(),
            "finished_at": job.finished_at.isoformat() if job.finished_at else None}


def jobs_recent(limit: int = 10) -> list[dict[str, Any]]:
    return [job_summary(job) for job in SpamJob.objects.select_related("model").order_by("-id")[:limit]]


def current_label(link_id: int, labeller: str) -> str | None:
    return Feedback.objects.filter(link_id=link_id, labeller=labeller).values_list("label", flat=True).first()


def verdict_of(signals: dict[str, Any]) -> dict[str, Any] | None:
    """The stored spam verdict of an analysis (None when it has none)."""
    if "spam.score" not in signals:
        return None
    reasons = signals.get("spam.reasons") or []
    return {"score": signals["spam.score"], "flag": bool(signals.get("spam.flag")), "model": signals.get("spam.model"),
            "reasons": [r for r in reasons if isinstance(r, dict) and isinstance(r.get("text"), str)]}


def roc_curve(limit: int = 2000) -> dict[str, Any] | None:
    """The active model's ROC curve on the newest ``limit`` labels (None without both classes): points in
    0..1 and the SVG polyline they make in a 100 x 100 box."""
    from linkmeter.indicators.spam import learning
    from linkmeter.web.links.services import spam_learning

    labels = sorted(spam_learning.labels_all(), key=lambda label: label.time)[-limit:]
    truth = [label.is_spam for label in labels]
    positives, negatives = sum(truth), len(truth) - sum(truth)
    if not positives or not negatives:
        return None
    artifact = spam_learning.artifact_of(spam_learning.spam_model_active())
    predicted = learning.scores(artifact, [(label.url, label.signals) for label in labels])
    ranked = sorted(zip(predicted, truth, strict=True), key=lambda pair: -pair[0])
    points = [(0.0, 0.0)]
    tp = fp = 0
    for _, is_spam in ranked:
        if is_spam:
            tp += 1
        else:
            fp += 1
        points.append((fp / negatives, tp / positives))
    svg = " ".join(f"{x * 100:.1f},{100 - y * 100:.1f}" for x, y in points)
    return {"points": svg, "n": len(labels), "positives": positives,
            "figures": learning.evaluate(truth, predicted)}
