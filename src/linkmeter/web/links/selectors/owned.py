"""What an account may see: its own batches, and the analyses and links reached through them. Everything else
is answered as missing (404, never 403), so reuse of a link or an analysis across accounts reveals nobody."""

from __future__ import annotations

from typing import Any

from django.db.models import Exists, OuterRef, Q, QuerySet

from linkmeter.web.links.models import Analysis, Batch, BatchItem, Link


def is_local_owner(owner: Any) -> bool:
    account = getattr(owner, "account", None)
    return bool(getattr(account, "is_local_owner", False))


def _mine(owner: Any, batch: str = "") -> Q | None:
    """The owner's batches as a condition on ``batch`` (a path to a Batch, "" for Batch itself); None for nobody."""
    if owner is None or not getattr(owner, "is_authenticated", False):
        return None
    mine = Q(**{f"{batch}owner_id": owner.pk})
    if is_local_owner(owner):
        mine |= Q(**{f"{batch}owner__isnull": True})
    return mine


def batches(owner: Any) -> QuerySet[Batch]:
    """The owner's batches; the local owner also sees batches made before accounts existed (no owner)."""
    mine = _mine(owner)
    return Batch.objects.filter(mine) if mine is not None else Batch.objects.none()


def analyses(owner: Any) -> QuerySet[Analysis]:
    """Analyses in one of the owner's batches (a reused analysis is seen by each account that got it)."""
    mine = _mine(owner, "batch__")
    if mine is None:
        return Analysis.objects.none()
    # The item joined to its batch, not "batch IN (the owner's batches)": that list grew with every submission
    # and was built again for every read (SQLite: 20 submissions/s made a read cost milliseconds within minutes).
    return Analysis.objects.filter(Exists(BatchItem.objects.filter(mine, analysis=OuterRef("pk"))))


def links(owner: Any) -> QuerySet[Link]:
    """Links the owner submitted."""
    return Link.objects.filter(Exists(analyses(owner).filter(link=OuterRef("pk"))))
