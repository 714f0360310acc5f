"""Feedback on a link (spam or ham), attached to its latest analysis."""

from __future__ import annotations

from django.contrib.auth.models import AnonymousUser, User

from linkmeter.web.links.models import Analysis, Feedback, FeedbackLabel, Link
from linkmeter.web.links.services.errors import ServiceError


def feedback_create(*, link: Link, label: str, user: User | AnonymousUser | None = None,
                    analysis: Analysis | None = None) -> Feedback:
    """``analysis``: the labeller's latest analysis of the link (default: the link's latest)."""
    if label not in FeedbackLabel.values:
        raise ServiceError("invalid_label", f"label must be one of {', '.join(FeedbackLabel.values)}",
                           {"given": label})
    requester = user if isinstance(user, User) else None
    return Feedback.objects.create(link=link, label=label, analysis=analysis or link.latest_analysis,
                                   user=requester)
