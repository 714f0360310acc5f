"""Provider health: from the engine this process runs, else what the environment implies."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from linkmeter.assembly import build_engine
from linkmeter.providers.registry import PROVIDER_CLASSES
from linkmeter.web.jobs.health import engine_health, register_engine

NAMES = {cls.name for cls in PROVIDER_CLASSES}


@pytest.fixture(autouse=True)
def no_engine() -> Iterator[None]:
    register_engine(None)
    yield
    register_engine(None)


async def test_without_an_engine_the_environment_says_what_is_disabled(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LINKMETER_REDDIT_ENABLED", "false")
    disabled, breakers = await engine_health()
    assert disabled["reddit"] == "switched off by LINKMETER_REDDIT_ENABLED"
    assert "page" not in disabled
    assert breakers == dict.fromkeys(NAMES, "unknown")


async def test_the_registered_engine_reports_its_breakers_and_disabled_providers() -> None:
    engine = build_engine({"LINKMETER_WAYBACK_ENABLED": "false"})
    register_engine(engine)
    try:
        for _ in range(engine.plan.by_name("rdap").policy.breaker_threshold):
            await engine.state.breakers.record("rdap", False, engine.plan.by_name("rdap").policy.breaker_threshold)
        disabled, breakers = await engine_health()
    finally:
        await engine.close()
    assert set(disabled) == {"wayback"}
    assert breakers["rdap"] == "open" and breakers["page"] == "closed" and set(breakers) == NAMES
