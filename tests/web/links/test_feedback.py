"""Feedback: stored on the link's latest analysis; bad labels refused."""

from __future__ import annotations

import pytest

from linkmeter.web.links.models import Link
from linkmeter.web.links.services.errors import ServiceError
from linkmeter.web.links.services.feedback import feedback_create
from linkmeter.web.links.services.submission import analysis_submit

pytestmark = pytest.mark.django_db(transaction=True)


def test_feedback_is_stored_and_bad_labels_refused() -> None:
    analysis_submit(urls=["https://example.org/a"])
    link = Link.objects.get()
    assert feedback_create(link=link, label="spam").label == "spam"
    with pytest.raises(ServiceError) as info:
        feedback_create(link=link, label="maybe")
    assert info.value.code == "invalid_label"
