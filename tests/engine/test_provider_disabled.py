"""A provider that finds out during a call that the upstream will not serve it ends that call ``disabled``."""

from __future__ import annotations

import asyncio
from typing import Any

from linkmeter.engine.errors import ProviderDisabled
from linkmeter.engine.provider import Policy, Signals
from linkmeter.engine.results import CallStatus
from tests.engine.fakes import FakeProvider, fails, make_engine

URL = "https://news.example.org/a/1"
REASON = "search needs a logged-in session: set LINKMETER_P_API_KEY"


async def test_provider_disabled_ends_the_call_disabled_with_its_reason_and_is_not_retried() -> None:
    provider = FakeProvider("p", provides=("p.x",), behave=fails(ProviderDisabled(REASON, status=403)),
                            policy=Policy(timeout=1, retries=5, backoff_base=0.01))

    call = (await make_engine(provider).analyze(URL)).providers["p"]

    assert (call.status, call.attempts, call.message, call.signals) == (CallStatus.DISABLED, 1, REASON, {})
    assert provider.calls == 1


async def test_provider_disabled_does_not_open_the_circuit() -> None:
    provider = FakeProvider("p", provides=("p.x",), behave=fails(ProviderDisabled(REASON)),
                            policy=Policy(timeout=1, retries=0, breaker_threshold=2, breaker_cooldown=60))
    engine = make_engine(provider)

    statuses = [(await engine.analyze(f"{URL}?n={n}")).providers["p"].status for n in range(4)]

    assert statuses == [CallStatus.DISABLED] * 4
    assert provider.calls == 4  # never refused by an open breaker


async def test_callers_joining_the_call_in_flight_see_it_disabled_too() -> None:
    async def refuse_after_a_moment(signals: Signals, n: int) -> dict[str, Any]:
        await asyncio.sleep(0.05)
        raise ProviderDisabled(REASON)

    provider = FakeProvider("p", provides=("p.x",), behave=refuse_after_a_moment)
    engine = make_engine(provider)

    results = await asyncio.gather(engine.analyze(URL), engine.analyze(URL))

    assert [r.providers["p"].status for r in results] == [CallStatus.DISABLED] * 2
    assert [r.providers["p"].message for r in results] == [REASON] * 2
    assert provider.calls == 1
