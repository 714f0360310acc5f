"""What linkmeter stores: links, their analyses over time, every provider result, batches and feedback."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import models


class Link(models.Model):
    """One normalised URL; its analyses over time are its history."""

    url = models.CharField(max_length=2048, unique=True)
    domain = models.CharField(max_length=253, db_index=True)
    first_seen = models.DateTimeField(auto_now_add=True)
    latest_analysis = models.ForeignKey(
        "Analysis", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return self.url


class AnalysisStatus(models.TextChoices):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    PARTIAL = "partial"
    FAILED = "failed"


FINAL_STATUSES = frozenset({AnalysisStatus.DONE, AnalysisStatus.PARTIAL, AnalysisStatus.FAILED})


class Analysis(models.Model):
    """One run of the providers for one link."""

    link = models.ForeignKey(Link, on_delete=models.CASCADE, related_name="analyses")
    status = models.CharField(max_length=10, choices=AnalysisStatus.choices, default=AnalysisStatus.QUEUED)
    priority = models.SmallIntegerField(default=0)  # higher runs first
    providers = models.JSONField(default=list, blank=True)  # the selection asked for; [] = all
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    queued_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    deadline_at = models.DateTimeField(null=True, blank=True)  # set when it starts; the watchdog reads it
    attempts = models.SmallIntegerField(default=0)  # how many times a runner started it
    signals = models.JSONField(default=dict, blank=True)
    elapsed_ms = models.FloatField(null=True, blank=True)
    error = models.TextField(blank=True, default="")

    class Meta:
        ordering = ["-id"]
        indexes = [
            models.Index(fields=["status", "-priority", "id"], name="analysis_queue"),
            models.Index(fields=["link", "-finished_at"], name="analysis_link_history"),
        ]

    def __str__(self) -> str:
        return f"analysis {self.pk} of {self.link_id} ({self.status})"

    @property
    def is_final(self) -> bool:
        return self.status in FINAL_STATUSES


class ProviderResult(models.Model):
    """One provider's call for one analysis: status, timings, its numbers and the raw answer."""

    analysis = models.ForeignKey(Analysis, on_delete=models.CASCADE, related_name="results")
    provider = models.CharField(max_length=40)
    status = models.CharField(max_length=20)
    latency_ms = models.FloatField(default=0.0)
    attempts = models.SmallIntegerField(default=0)
    message = models.TextField(blank=True, default="")
    signals = models.JSONField(default=dict, blank=True)
    raw = models.JSONField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    # Deferred (services/deferred.py): a call that ended rate_limited or circuit_open, to be made again in
    # the background when the provider's budget allows; set while it waits, cleared once it is settled.
    # Defaults in the database too: bulkwrite.py inserts results with plain statements naming only its columns.
    deferred_since = models.DateTimeField(null=True, blank=True)
    deferred_priority = models.SmallIntegerField(default=0, db_default=0)  # its analysis's: higher first
    refills = models.SmallIntegerField(default=0, db_default=0)  # background tries made
    refill_lease = models.DateTimeField(null=True, blank=True)  # a refiller holds it until then
    refill_token = models.CharField(max_length=32, blank=True, default="", db_default="")
    refilled_at = models.DateTimeField(null=True, blank=True)  # when a background try settled it

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(fields=["analysis", "provider"], name="one_result_per_provider"),
        ]
        indexes = [
            models.Index(fields=["provider", "-created_at"], name="result_provider_recent"),
            models.Index(fields=["provider", "-deferred_priority", "id"], name="result_deferred",
                         condition=models.Q(deferred_since__isnull=False)),
        ]

    @property
    def is_deferred(self) -> bool:
        return self.deferred_since is not None

    def __str__(self) -> str:
        return f"{self.provider}: {self.status}"


class BatchSource(models.TextChoices):
    API = "api"
    PASTE = "paste"
    CSV = "csv"
    CLI = "cli"


class CallbackStatus(models.TextChoices):
    NONE = "", "no callback"
    PENDING = "pending"  # the batch is not closed yet
    SENDING = "sending"  # closed: the webhook is being delivered (retried with backoff)
    DELIVERED = "delivered"
    FAILED = "failed"  # every try failed, or the target was refused


class Batch(models.Model):
    """A submission of one or many URLs: its analyses (new or reused) in input order."""

    name = models.CharField(max_length=200, blank=True, default="")
    source = models.CharField(max_length=10, choices=BatchSource.choices, default=BatchSource.API)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    providers = models.JSONField(default=list, blank=True)
    fresh = models.BooleanField(default=False)
    total = models.IntegerField(default=0)
    invalid = models.JSONField(default=list, blank=True)  # the rejected input lines, with index and reason
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    analyses: models.ManyToManyField[Analysis, BatchItem] = models.ManyToManyField(
        Analysis, through="BatchItem", related_name="batches"
    )
    # The webhook POSTed when the batch closes (Celery mode): where, and how its delivery went.
    callback_url = models.CharField(max_length=2048, blank=True, default="")
    callback_status = models.CharField(max_length=10, choices=CallbackStatus.choices, blank=True, default="")
    callback_attempts = models.SmallIntegerField(default=0)
    callback_last_error = models.TextField(blank=True, default="")
    callback_sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        verbose_name_plural = "batches"
        indexes = [
            # The sweeper's question: finished batches whose webhook was never started (one row per batch
            # otherwise: single-URL submissions make many batches).
            models.Index(fields=["finished_at"], condition=models.Q(callback_status="pending"),
                         name="batch_callback_pending"),
        ]

    def __str__(self) -> str:
        return self.name or f"batch {self.pk}"


class BatchItem(models.Model):
    batch = models.ForeignKey(Batch, on_delete=models.CASCADE, related_name="items")
    analysis = models.ForeignKey(Analysis, on_delete=models.CASCADE, related_name="batch_items")
    position = models.IntegerField()  # index in the submission
    reused = models.BooleanField(default=False)  # an earlier analysis young enough to answer

    class Meta:
        ordering = ["position"]
        constraints = [models.UniqueConstraint(fields=["batch", "position"], name="one_item_per_position")]


class LinkEntry(models.Model):
    """A link as one account sees it: the account's newest analysis of it, copied for lists and search (one
    row per account and link, rewritten by the services whenever one of the link's analyses changes)."""

    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )  # None: batches made before accounts existed (the local owner sees them)
    link = models.ForeignKey(Link, on_delete=models.CASCADE, related_name="entries")
    analysis = models.ForeignKey(Analysis, on_delete=models.CASCADE, related_name="+")
    url = models.CharField(max_length=2048)
    domain = models.CharField(max_length=253)
    title = models.CharField(max_length=500, blank=True, default="")
    search_text = models.TextField(blank=True, default="")  # url, title and domain in lower case: what q matches
    status = models.CharField(max_length=10, choices=AnalysisStatus.choices)
    analysed_at = models.DateTimeField()  # when the analysis finished; when it was queued while it has not
    signals = models.JSONField(default=dict, blank=True)
    providers = models.JSONField(default=dict, blank=True)  # provider -> the status of its call

    class Meta:
        ordering = ["-analysed_at", "-id"]
        # The signals' expression indexes are made by migration 0005 (the same SQL the search emits).
        indexes = [
            models.Index(fields=["owner", "analysed_at", "id"], name="entry_analysed"),
            models.Index(fields=["owner", "domain", "id"], name="entry_domain"),
            models.Index(fields=["owner", "status", "id"], name="entry_status"),
            models.Index(fields=["owner", "url", "id"], name="entry_url"),
            models.Index(fields=["owner", "title", "id"], name="entry_title"),
        ]

    def __str__(self) -> str:
        return f"{self.url} for {self.owner_id}"


class FeedbackLabel(models.TextChoices):
    SPAM = "spam"
    HAM = "ham"


class FeedbackSource(models.TextChoices):
    UI = "ui"
    API = "api"
    BULK = "bulk"
    CLI = "cli"


class Feedback(models.Model):
    """A person's label for a link; the spam model learns from these. One per labeller and link: a later label
    of the same labeller replaces theirs (``labeller``: ``user:<id>``, or ``cli:<name>``, or ``anonymous``)."""

    link = models.ForeignKey(Link, on_delete=models.CASCADE, related_name="feedback")
    analysis = models.ForeignKey(Analysis, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    label = models.CharField(max_length=4, choices=FeedbackLabel.choices)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    labeller = models.CharField(max_length=200, default="anonymous")
    source = models.CharField(max_length=4, choices=FeedbackSource.choices, default=FeedbackSource.UI)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True, db_index=True)  # when the current label was given

    class Meta:
        ordering = ["-id"]
        constraints = [models.UniqueConstraint(fields=["link", "labeller"], name="one_label_per_labeller")]

    def __str__(self) -> str:
        return f"{self.label} for {self.link_id} by {self.labeller}"


class SpamModel(models.Model):
    """One version of the spam model: its artifact (JSON, never pickle), what it learned from, its figures.
    Exactly one is active (the partial unique constraint); the shipped artifact is version 1."""

    version = models.PositiveIntegerField(unique=True)
    parent = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    algorithm = models.CharField(max_length=200)
    schema = models.JSONField(default=dict, blank=True)
    labels_seen = models.IntegerField(default=0)
    labels_first_id = models.IntegerField(null=True, blank=True)
    labels_last_id = models.IntegerField(null=True, blank=True)
    figures = models.JSONField(default=dict, blank=True)  # the artifact's own, plus the candidate check's
    check_passed = models.BooleanField(null=True, blank=True)  # None: never checked (the shipped one)
    check_message = models.TextField(blank=True, default="")
    artifact = models.TextField()
    active = models.BooleanField(default=False)
    activated_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-version"]
        constraints = [models.UniqueConstraint(fields=["active"], condition=models.Q(active=True),
                                               name="one_active_spam_model")]

    def __str__(self) -> str:
        return f"spam model {self.version}{' (active)' if self.active else ''}"


class SpamJobKind(models.TextChoices):
    TRAIN = "train"
    RESCORE = "rescore"


class SpamJobStatus(models.TextChoices):
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


class SpamJob(models.Model):
    """A training or a rescoring run: its progress, and the lock (one running job of each kind at a time,
    whichever process runs it: the partial unique constraint)."""

    kind = models.CharField(max_length=8, choices=SpamJobKind.choices)
    status = models.CharField(max_length=8, choices=SpamJobStatus.choices, default=SpamJobStatus.RUNNING)
    model = models.ForeignKey(SpamModel, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    trigger = models.CharField(max_length=20, blank=True, default="")  # demand, labels, daily, cli, promote
    promote = models.BooleanField(default=False)
    done = models.IntegerField(default=0)
    total = models.IntegerField(default=0)
    message = models.TextField(blank=True, default="")
    started_at = models.DateTimeField(auto_now_add=True)
    heartbeat_at = models.DateTimeField(auto_now=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        constraints = [models.UniqueConstraint(fields=["kind"], condition=models.Q(status="running"),
                                               name="one_running_spam_job")]

    def __str__(self) -> str:
        return f"spam {self.kind} {self.pk} ({self.status})"


def result_dict(result: ProviderResult, *, include_raw: bool = False,
                estimate: datetime | None = None) -> dict[str, Any]:
    """A provider result as the API shows it; ``deferred`` (null unless the cell waits to be filled in the
    background): since when, the refiller's tries so far, and ``estimate`` (when it will likely be asked)."""
    data: dict[str, Any] = {
        "status": result.status,
        "latency_ms": round(result.latency_ms, 1),
        "attempts": result.attempts,
        "message": result.message,
        "signals": result.signals,
        "deferred": None if result.deferred_since is None else {
            "since": result.deferred_since.isoformat(), "tries": result.refills,
            "estimate": estimate.isoformat() if estimate else None},
        "refilled_at": result.refilled_at.isoformat() if result.refilled_at else None,
    }
    if include_raw:
        data["raw"] = result.raw
    return data
