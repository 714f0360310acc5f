"""The registry finds every provider by its file, lists them in a stable order and reads the tables' columns."""

from __future__ import annotations

import textwrap

import pytest

import linkmeter.providers
from linkmeter.engine.plan import Plan
from linkmeter.providers._discovery import provider_classes
from linkmeter.providers.registry import INDICATORS, PROVIDER_CLASSES, PROVIDERS, headlines
from tests.conftest import AddModules

NEW_PROVIDER = textwrap.dedent('''
    """A provider file dropped into linkmeter.providers, as a contributor would add one."""
    from linkmeter.engine.provider import Collected, Provider, SignalSpec
    from linkmeter.providers.page import PageProvider  # imported, not defined here: listed once

    class ZebraProvider(Provider):
        name = "zebra"
        needs = ("url",)
        provides = {"zebra.stripes": SignalSpec(int, "stripes", headline="Stripes")}

        def key(self, signals):
            return signals["url"]

        async def collect(self, ctx, signals):
            return Collected({"zebra.stripes": 1})

    class EarlyProvider(ZebraProvider):
        name = "early"
        order = 15
        provides = {"early.thing": SignalSpec(int, "a thing")}
''')
HELPER = '"""A helper module: no provider defined here."""\nfrom linkmeter.engine.provider import Provider\n'


@pytest.fixture
def new_provider_file(add_modules: AddModules) -> None:
    add_modules(linkmeter.providers, {"zebra": NEW_PROVIDER, "parsing": HELPER})


TODAY = ("page", "dns", "rdap", "dnsbl", "wayback", "hackernews", "reddit", "engagement")


def test_the_listing_order_keeps_todays_providers_in_their_order() -> None:
    # A subsequence, not equality: a provider added later takes its own place without editing this test.
    names = [cls.name for cls in PROVIDER_CLASSES]
    assert [name for name in names if name in TODAY] == list(TODAY)
    assert "engagement" in {cls.name for cls in INDICATORS}
    assert names.index("engagement") >= len(PROVIDERS)  # indicators come after every provider
    assert (*PROVIDERS, *INDICATORS) == PROVIDER_CLASSES


def test_the_registered_providers_form_a_valid_plan() -> None:
    plan = Plan.build([cls() for cls in PROVIDER_CLASSES])
    assert sorted(plan.names) == sorted(cls.name for cls in PROVIDER_CLASSES if cls.in_default_set)
    assert sorted(p.name for p in plan.known) == sorted(cls.name for cls in PROVIDER_CLASSES)
    everything = Plan.build([cls() for cls in PROVIDER_CLASSES], select=[cls.name for cls in PROVIDER_CLASSES])
    assert sorted(everything.names) == sorted(cls.name for cls in PROVIDER_CLASSES)


def test_a_new_provider_file_is_found_without_editing_a_list(new_provider_file: None) -> None:
    found = provider_classes(linkmeter.providers)
    names = [cls.name for cls in found if cls.name in (*TODAY, "early", "zebra")]
    # Its own order (15) puts "early" after page; without one a provider comes after today's, by name.
    assert names == ["page", "early", "dns", "rdap", "dnsbl", "wayback", "hackernews", "reddit", "zebra"]
    assert "parsing" not in names and "htmlmeta" not in names and "registry" not in names


def test_headline_columns_follow_the_listing_order_and_each_signal_has_one_heading() -> None:
    columns = [(signal, spec.headline) for signal, spec in headlines() if signal.split(".")[0] in TODAY]
    assert columns == [
        ("page.status", "HTTP"), ("page.title", "Title"), ("rdap.domain_age_days", "Domain age (d)"),
        ("dnsbl.listed_count", "Blocklists"), ("wayback.capture_count", "Captures"),
        ("hackernews.points", "HN points"), ("reddit.score", "Reddit score"), ("engagement.total", "Engagement"),
    ]


def test_headlines_of_a_plan_subset_keep_the_listing_order() -> None:
    by_name = {cls.name: cls for cls in PROVIDER_CLASSES}
    chosen = [by_name["engagement"], by_name["reddit"], by_name["page"]]
    assert [signal for signal, _ in headlines(chosen)] == [
        "page.status", "page.title", "reddit.score", "engagement.total"]
