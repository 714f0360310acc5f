"""The plan refuses to start on an unknown signal, a duplicate name or a cycle, and orders rounds."""

from __future__ import annotations

import pytest

from linkmeter.engine.plan import Plan, PlanError
from tests.engine.fakes import FakeProvider


def test_rounds_follow_needs_and_wants() -> None:
    page = FakeProvider("page", provides=("page.final_url",))
    dns = FakeProvider("dns", needs=("domain",), wants=("page.final_url",), provides=("dns.a",))
    spam = FakeProvider("spam", needs=("dns.a",), provides=("spam.score",))
    plan = Plan.build([spam, dns, page])
    assert plan.names.index("page") < plan.names.index("dns") < plan.names.index("spam")
    assert plan.depth == {"page": 1, "dns": 2, "spam": 3}
    assert plan.dependents["page"] == ("dns",)


def test_unknown_needed_signal_is_named() -> None:
    broken = FakeProvider("broken", needs=("nowhere.value",), provides=("b.x",))
    with pytest.raises(PlanError, match=r"'broken' needs unknown signal 'nowhere.value'"):
        Plan.build([broken])


def test_unknown_wanted_signal_is_allowed() -> None:
    optional = FakeProvider("optional", wants=("maybe.later",), provides=("o.x",))
    assert Plan.build([optional]).waits_for["optional"] == frozenset()


def test_duplicate_name_is_refused() -> None:
    with pytest.raises(PlanError, match="duplicate provider name 'twin'"):
        Plan.build([FakeProvider("twin", provides=("a.x",)), FakeProvider("twin", provides=("b.x",))])


def test_two_producers_of_one_signal_are_refused() -> None:
    with pytest.raises(PlanError, match=r"'a\.x' provided by both 'one' and 'two'"):
        Plan.build([FakeProvider("one", provides=("a.x",)), FakeProvider("two", provides=("a.x",))])


def test_cycle_is_refused_with_its_members() -> None:
    a = FakeProvider("alpha", needs=("b.x",), provides=("a.x",))
    b = FakeProvider("beta", needs=("a.x",), provides=("b.x",))
    with pytest.raises(PlanError, match="dependency cycle") as info:
        Plan.build([a, b])
    assert "alpha" in str(info.value) and "beta" in str(info.value)


def test_all_problems_reported_at_once() -> None:
    with pytest.raises(PlanError) as info:
        Plan.build([FakeProvider("x", needs=("n.one",), provides=("x.a",)),
                    FakeProvider("x", needs=("n.two",), provides=("x.b",))])
    message = str(info.value)
    assert "duplicate provider name 'x'" in message and "n.one" in message and "n.two" in message


def test_selection_pulls_in_what_selected_providers_need() -> None:
    page = FakeProvider("page", provides=("page.final_url",))
    needy = FakeProvider("needy", needs=("page.final_url",), provides=("n.x",))
    other = FakeProvider("other", provides=("o.x",))
    plan = Plan.build([page, needy, other], select=["needy"])
    assert sorted(plan.names) == ["needy", "page"]


def test_selection_of_an_unknown_provider_lists_the_known_ones() -> None:
    with pytest.raises(PlanError, match=r"unknown provider\(s\): nope \(known: page\)"):
        Plan.build([FakeProvider("page", provides=("page.x",))], select=["nope"])


def test_wants_outside_the_selection_are_not_waited_for() -> None:
    page = FakeProvider("page", provides=("page.canonical_url",))
    social = FakeProvider("social", wants=("page.canonical_url",), provides=("s.x",))
    plan = Plan.build([page, social], select=["social"])
    assert plan.names == ["social"] and plan.waits_for["social"] == frozenset()


def test_without_a_selection_the_plan_is_the_default_set_and_what_it_needs() -> None:
    page = FakeProvider("page", provides=("page.final_url",), in_default_set=False)  # needed by a default one
    needy = FakeProvider("needy", needs=("page.final_url",), provides=("n.x",))
    slow = FakeProvider("slow", provides=("s.x",), in_default_set=False)
    wanting = FakeProvider("wanting", wants=("s.x",), provides=("w.x",))
    plan = Plan.build([page, needy, slow, wanting])
    assert sorted(plan.names) == ["needy", "page", "wanting"]
    assert plan.waits_for["wanting"] == frozenset()  # a want of a provider left out is not waited for
    assert "s.x" not in plan.producer
    assert [p.name for p in plan.known] == ["page", "needy", "slow", "wanting"]


def test_a_provider_outside_the_default_set_runs_when_selected_with_what_it_needs() -> None:
    page = FakeProvider("page", provides=("page.final_url",))
    slow = FakeProvider("slow", needs=("page.final_url",), provides=("s.x",), in_default_set=False)
    other = FakeProvider("other", provides=("o.x",))
    assert sorted(Plan.build([page, slow, other], select=["slow"]).names) == ["page", "slow"]
