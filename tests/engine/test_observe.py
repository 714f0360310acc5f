"""The engine's observer hook and log context: every finished call and URL reported once, safely."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import pytest

from linkmeter.engine.observe import (
    Observers,
    log_context,
    logging_context,
    with_observer,
)
from linkmeter.engine.provider import ProviderError, Signals
from linkmeter.engine.results import CallResult, CallStatus, UrlResult, UrlStatus
from tests.engine.fakes import FakeProvider, fails, make_engine, returns

URLS = ["https://news.example.org/a/1", "https://news.example.org/a/2", "https://blog.example.com/x"]


class Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[str, CallStatus]] = []
        self.urls: list[tuple[str, UrlStatus]] = []

    def call_finished(self, provider: str, result: CallResult) -> None:
        self.calls.append((provider, result.status))

    def url_finished(self, result: UrlResult) -> None:
        self.urls.append((result.url, result.status))


class Broken:
    def call_finished(self, provider: str, result: CallResult) -> None:
        raise RuntimeError("observer bug")

    def url_finished(self, result: UrlResult) -> None:
        raise RuntimeError("observer bug")


def three_providers() -> list[FakeProvider]:
    good = FakeProvider("good", provides=("good.x",))
    bad = FakeProvider("bad", provides=("bad.x",), behave=fails(ProviderError("HTTP 404")))
    after_bad = FakeProvider("after_bad", needs=("bad.x",), provides=("after.x",))
    return [good, bad, after_bad]


async def test_every_call_and_every_url_is_reported_once_with_its_final_status() -> None:
    recorder = Recorder()
    engine = make_engine(*three_providers())
    engine.observer = recorder
    results = [result async for result in engine.analyze_many(URLS, concurrency=2)]
    assert sorted(recorder.urls) == sorted((r.url, r.status) for r in results)
    assert {status for _, status in recorder.urls} == {UrlStatus.PARTIAL}
    assert sorted(recorder.calls) == sorted(
        [("good", CallStatus.OK), ("bad", CallStatus.ERROR), ("after_bad", CallStatus.SKIPPED)] * len(URLS))


async def test_a_failing_observer_costs_no_result_and_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    recorder = Recorder()
    engine = make_engine(*three_providers())
    engine.observer = Observers(Broken(), recorder)
    with caplog.at_level(logging.ERROR, logger="linkmeter.engine.observe"):
        result = await engine.analyze(URLS[0])
    assert result.status is UrlStatus.PARTIAL and result.providers["good"].status is CallStatus.OK
    assert len(recorder.calls) == 3 and len(recorder.urls) == 1  # the next observer still heard everything
    failures = [r for r in caplog.records if r.exc_info and "observer bug" in str(r.exc_info[1])]
    assert len(failures) == 4  # three calls and the URL


async def test_narrowed_engines_report_to_the_same_observer() -> None:
    recorder = Recorder()
    engine = make_engine(*three_providers())
    engine.observer = recorder
    await engine.narrowed(["good"]).analyze(URLS[0])
    assert recorder.calls == [("good", CallStatus.OK)] and recorder.urls == [(URLS[0], UrlStatus.DONE)]


async def test_without_an_observer_nothing_is_reported_and_results_are_unchanged() -> None:
    engine = make_engine(*three_providers())
    assert engine.observer is None
    result = await engine.analyze(URLS[0])
    assert {name: r.status for name, r in result.providers.items()} == {
        "good": CallStatus.OK, "bad": CallStatus.ERROR, "after_bad": CallStatus.SKIPPED}


async def test_provider_code_runs_inside_a_log_context_naming_the_url_and_the_provider() -> None:
    seen: dict[str, Mapping[str, object]] = {}

    def watching(name: str) -> Any:
        async def behave(signals: Signals, n: int) -> dict[str, Any]:
            seen[name] = log_context()
            return await returns({f"{name}.x": 1})(signals, n)

        return behave

    first = FakeProvider("first", provides=("first.x",), behave=watching("first"))
    second = FakeProvider("second", needs=("first.x",), provides=("second.x",), behave=watching("second"))
    with logging_context(analysis_id=7, batch_id=3):
        await make_engine(first, second).analyze(URLS[0])
        assert log_context() == {"analysis_id": 7, "batch_id": 3}  # nothing leaks out of analyze()
    assert seen["first"] == {"analysis_id": 7, "batch_id": 3, "url": URLS[0], "provider": "first"}
    assert seen["second"] == {"analysis_id": 7, "batch_id": 3, "url": URLS[0], "provider": "second"}
    assert log_context() == {}


def test_logging_context_nests_and_none_removes_a_field() -> None:
    with logging_context(analysis_id=1, batch_id=2):
        with logging_context(batch_id=None, provider="rdap"):
            assert log_context() == {"analysis_id": 1, "provider": "rdap"}
        assert log_context() == {"analysis_id": 1, "batch_id": 2}
    assert log_context() == {}


def test_with_observer_combines_observers_and_adds_one_only_once() -> None:
    first, second = Recorder(), Recorder()
    assert with_observer(None, first) is first
    assert with_observer(first, first) is first
    both = with_observer(first, second)
    assert isinstance(both, Observers) and both.observers == (first, second)
    assert with_observer(both, second) is both
