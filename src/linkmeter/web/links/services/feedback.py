"""Labels on links (spam or ham): one per labeller and link, a later one replacing theirs; one or many at a time."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser, User
from django.db import transaction

from linkmeter.engine.urls import InvalidURL, parse_url
from linkmeter.web.links.models import Analysis, Feedback, FeedbackLabel, FeedbackSource, Link
from linkmeter.web.links.services.errors import ServiceError

# What a label may be written as (CSV files and the bulk API): spam / ham and their common spellings.
LABEL_ALIASES = {
    "spam": FeedbackLabel.SPAM, "phishing": FeedbackLabel.SPAM, "1": FeedbackLabel.SPAM, "true": FeedbackLabel.SPAM,
    "ham": FeedbackLabel.HAM, "not spam": FeedbackLabel.HAM, "not_spam": FeedbackLabel.HAM,
    "legitimate": FeedbackLabel.HAM, "0": FeedbackLabel.HAM, "false": FeedbackLabel.HAM,
}
MAX_BULK_ITEMS = 10_000


def labeller_of(user: AbstractBaseUser | AnonymousUser | None, name: str | None = None) -> str:
    """Who gave a label: the signed-in user, else the CLI's name (``cli:<name>``), else ``anonymous`` (every
    anonymous label counts as one labeller's, so unsigned labels cannot outvote people)."""
    if user is not None and getattr(user, "is_authenticated", False) and user.pk is not None:
        return f"user:{user.pk}"
    if name:
        return f"cli:{name}"
    return "anonymous"


def parse_label(text: object) -> str:
    """``spam`` or ``ham`` from a label as people write it. Raises ServiceError(invalid_label)."""
    found = LABEL_ALIASES.get(str(text).strip().lower()) if isinstance(text, str | int | bool) else None
    if found is None:
        raise ServiceError("invalid_label", "label must be spam or ham (or not_spam, phishing, legitimate, 1, 0)",
                           {"given": text if isinstance(text, str | int | bool | None) else repr(text)})
    return str(found)


def feedback_create(*, link: Link, label: str, user: AbstractBaseUser | AnonymousUser | None = None,
                    source: str = FeedbackSource.UI, labeller: str | None = None,
                    analysis: Analysis | None = None) -> Feedback:
    """Label ``link``; the same labeller's earlier label on it is replaced (their one row updated).
    ``analysis``: the labeller's latest analysis of the link (default: the link's latest)."""
    if label not in FeedbackLabel.values:
        raise ServiceError("invalid_label", f"label must be one of {', '.join(FeedbackLabel.values)}",
                           {"given": label})
    who = labeller or labeller_of(user)
    requester = user if isinstance(user, User) else None
    with transaction.atomic():
        feedback, _ = Feedback.objects.update_or_create(
            link=link, labeller=who,
            defaults={"label": label, "analysis": analysis or link.latest_analysis, "user": requester,
                      "source": source})
    _after_labels()
    return feedback


@dataclass(slots=True)
class BulkOutcome:
    """What a bulk labelling did: how many labels were stored (new or replacing) and the refused items."""

    created: int = 0
    replaced: int = 0
    errors: list[dict[str, Any]] = field(default_factory=list)  # {index, code, message, ...}

    def as_dict(self) -> dict[str, Any]:
        return {"created": self.created, "replaced": self.replaced, "errors": self.errors}


def feedback_bulk_create(*, items: Iterable[Mapping[str, object]], source: str = FeedbackSource.BULK,
                         user: AbstractBaseUser | AnonymousUser | None = None,
                         labeller: str | None = None, first_index: int = 0) -> BulkOutcome:
    """Label many URLs (each ``{url, label}``): a bad item is reported by index with a machine-readable code,
    the rest are stored. URLs never submitted get a link (no analysis: the model reads the URL alone)."""
    outcome = BulkOutcome()
    who = labeller or labeller_of(user)
    requester = user if isinstance(user, User) else None
    valid: dict[str, tuple[str, str]] = {}  # normalised url -> (domain, label); a later item replaces an earlier
    limit = settings.LINKMETER["MAX_URL_LENGTH"]
    for index, item in enumerate(items, start=first_index):
        raw_url = item.get("url")
        if not isinstance(raw_url, str) or not raw_url.strip():
            outcome.errors.append({"index": index, "code": "missing_url", "message": "the item has no URL"})
            continue
        try:
            parsed = parse_url(raw_url, max_length=limit)
        except InvalidURL as exc:
            outcome.errors.append({"index": index, "code": "invalid_url", "message": exc.message,
                                   "reason": exc.code, "url": raw_url[:200]})
            continue
        try:
            label = parse_label(item.get("label"))
        except ServiceError as exc:
            outcome.errors.append({"index": index, "code": exc.code, "message": exc.message, "url": raw_url[:200]})
            continue
        valid[parsed.url] = (parsed.domain, label)
    if not valid:
        return outcome
    with transaction.atomic():
        existing_links = {link.url: link for link in Link.objects.filter(url__in=list(valid))}
        missing = [Link(url=url, domain=domain) for url, (domain, _) in valid.items() if url not in existing_links]
        if missing:
            Link.objects.bulk_create(missing, ignore_conflicts=True)
            existing_links.update({link.url: link for link in Link.objects.filter(url__in=[m.url for m in missing])})
        links = existing_links
        earlier = {row.link_id: row for row in Feedback.objects.filter(labeller=who, link__in=list(links.values()))}
        new: list[Feedback] = []
        changed: list[Feedback] = []
        for url, (_, label) in valid.items():
            link = links[url]
            row = earlier.get(link.pk)
            if row is None:
                new.append(Feedback(link=link, label=label, analysis_id=link.latest_analysis_id, user=requester,
                                    labeller=who, source=source))
            else:
                row.label, row.analysis_id, row.user, row.source = label, link.latest_analysis_id, requester, source
                changed.append(row)
        Feedback.objects.bulk_create(new, batch_size=500)
        if changed:
            from django.utils import timezone

            now = timezone.now()
            for row in changed:
                row.updated_at = now
            Feedback.objects.bulk_update(changed, ["label", "analysis", "user", "source", "updated_at"],
                                         batch_size=500)
    outcome.created, outcome.replaced = len(new), len(changed)
    _after_labels()
    return outcome


def _after_labels() -> None:
    """New labels: scoring picks them up (the adaptation layers), and enough of them start a retrain."""
    from linkmeter.web.links.services import spam_learning

    transaction.on_commit(spam_learning.labels_changed)
