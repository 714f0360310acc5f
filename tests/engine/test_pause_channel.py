"""A good answer that says the upstream's allowance is spent (``Collected(pause=...)``) pauses the provider."""

from __future__ import annotations

from linkmeter.engine.provider import CallContext, Collected, Policy, Signals
from linkmeter.engine.results import CallStatus
from tests.engine.fakes import FakeProvider, make_engine

URL = "https://news.example.org/a/1"


class LastOfItsAllowance(FakeProvider):
    """Answers every call, the first one saying "that was the last request of this interval"."""

    def __init__(self, pause: float | None) -> None:
        super().__init__("p", provides=("p.x",), policy=Policy(timeout=1, retries=0))
        self.pause = pause

    async def collect(self, ctx: CallContext, signals: Signals) -> Collected:
        self.calls += 1
        return Collected(signals={"p.x": self.calls}, pause=self.pause if self.calls == 1 else None)


async def test_an_answer_asking_for_a_pause_is_a_result_and_holds_back_the_next_calls() -> None:
    provider = LastOfItsAllowance(pause=30)
    engine = make_engine(provider, url_deadline=0.5)

    first = (await engine.analyze(URL)).providers["p"]
    assert first.status is CallStatus.OK and first.signals == {"p.x": 1}
    assert await engine.state.limiter.paused_for("p") > 25

    # The next URL's call would outlast its deadline waiting for the pause: it is not sent at all.
    second = (await engine.analyze(URL + "?n=2")).providers["p"]
    assert second.status is CallStatus.RATE_LIMITED and provider.calls == 1


async def test_an_answer_without_a_pause_leaves_the_provider_alone() -> None:
    provider = LastOfItsAllowance(pause=None)
    engine = make_engine(provider, url_deadline=0.5)

    assert (await engine.analyze(URL)).providers["p"].status is CallStatus.OK
    assert await engine.state.limiter.paused_for("p") == 0.0
    assert (await engine.analyze(URL + "?n=2")).providers["p"].status is CallStatus.OK
    assert provider.calls == 2
