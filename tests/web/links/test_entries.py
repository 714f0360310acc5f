"""Link entries: the services keep one per account and link, showing the newest final analysis; migration
0004 builds the same entries from what existed before it."""

from __future__ import annotations

import importlib
from typing import Any

import pytest
from django.apps import apps
from django.contrib.auth.models import User

from linkmeter.engine.results import UrlStatus
from linkmeter.web.links.models import LinkEntry
from linkmeter.web.links.services.queue import analysis_claim_next, analysis_requeue
from linkmeter.web.links.services.submission import analysis_submit
from tests.web.api.conftest import complete_queued

pytestmark = pytest.mark.django_db

FIELDS = ("owner_id", "link_id", "analysis_id", "url", "domain", "title", "search_text", "status", "signals",
          "providers")


def entries() -> list[tuple[Any, ...]]:
    return sorted(LinkEntry.objects.values_list(*FIELDS), key=lambda row: (row[1], row[0] or 0))


def test_an_entry_follows_the_newest_final_analysis_of_each_account() -> None:
    ada, bob = User.objects.create_user("ada"), User.objects.create_user("bob")
    analysis_submit(urls=["https://example.org/a"], user=ada)
    assert [row[7] for row in entries()] == ["queued"]
    analysis_claim_next(limit=10, deadline_seconds=60)
    assert [row[7] for row in entries()] == ["running"]
    analysis_requeue(analysis_ids=list(LinkEntry.objects.values_list("analysis_id", flat=True)))
    assert [row[7] for row in entries()] == ["queued"]
    complete_queued(signals={"page.title": "First <b>", "hackernews.points": 3})
    analysis_submit(urls=["https://example.org/a"], user=ada, fresh=True)  # queued: the final one stays shown
    (row,) = entries()
    assert row[5:8] == ("First <b>", "https://example.org/a first <b> example.org", "done")
    assert row[9] == {"page": "ok", "rdap": "error"}
    complete_queued(status=UrlStatus.PARTIAL, signals={"hackernews.points": 8})
    analysis_submit(urls=["https://example.org/a"], user=bob)  # reuses ada's newest analysis
    ada_row, bob_row = entries()
    assert ada_row[0] == ada.pk and bob_row[0] == bob.pk
    assert ada_row[2] == bob_row[2] and ada_row[7] == "partial" and ada_row[8]["hackernews.points"] == 8


def test_migration_0004_builds_the_entries_the_services_keep() -> None:
    ada = User.objects.create_user("ada")
    analysis_submit(urls=[f"https://example.org/{n}" for n in range(5)], user=ada)
    complete_queued(limit=3, signals={"page.title": "T", "spam.score": 0.25})
    analysis_submit(urls=["https://example.org/0", "https://other.example/x"])  # no owner: before accounts
    complete_queued()
    kept = entries()
    LinkEntry.objects.all().delete()
    migration = importlib.import_module("linkmeter.web.links.migrations.0005_link_entries")
    migration.fill_entries(apps, None)
    assert entries() == kept and len(kept) == 7
