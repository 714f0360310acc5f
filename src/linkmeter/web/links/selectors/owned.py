"""What an account may see: its own batches, and the analyses and links reached through them. Everything else
is answered as missing (404, never 403), so reuse of a link or an analysis across accounts reveals nobody."""

from __future__ import annotations

from typing import Any

from django.db.models import Exists, OuterRef, Q, QuerySet

from linkmeter.web.links.models import Analysis, Batch, BatchItem, Link


def is_local_owner(owner: Any) -> bool:
    account = getattr(owner, "account", None)
    return bool(getattr(account, "is_local_owner", False))


def batches(owner: Any) -> QuerySet[Batch]:
    """The owner's batches; the local owner also sees batches made before accounts existed (no owner)."""
    if owner is None or not getattr(owner, "is_authenticated", False):
        return Batch.objects.none()
    mine = Q(owner_id=owner.pk)
    if is_local_owner(owner):
        mine |= Q(owner__isnull=True)
    return Batch.objects.filter(mine)


def analyses(owner: Any) -> QuerySet[Analysis]:
    """Analyses in one of the owner's batches (a reused analysis is seen by each account that got it)."""
    return Analysis.objects.filter(Exists(BatchItem.objects.filter(analysis=OuterRef("pk"),
                                                                   batch__in=batches(owner))))


def links(owner: Any) -> QuerySet[Link]:
    """Links the owner submitted."""
    return Link.objects.filter(Exists(analyses(owner).filter(link=OuterRef("pk"))))
