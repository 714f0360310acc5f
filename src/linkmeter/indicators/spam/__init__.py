"""The spam indicator: a calibrated spam score for every link, with its reasons, from every signal it can use.

The package (no Django, no Celery): ``features`` (URL and signal features, missing flags), ``model`` (the JSON
artifact, the shipped one, the current one), ``rules`` (hand rules with reason texts), ``scoring`` (the one
score: learned logit + online layer + domain memory + rules), ``learning`` (labels -> weights, adaptation
layers, candidate check, metrics), ``training`` (fitting a model from labelled URLs; needs scikit-learn) and
``build`` (``python -m linkmeter.indicators.spam.build`` writes the shipped artifact). docs/spam.md has it all.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from linkmeter.engine.plan import ROOT_SIGNALS
from linkmeter.engine.provider import CallContext, Collected, Policy, Provider, Signals, SignalSpec
from linkmeter.engine.urls import registered_domain
from linkmeter.indicators.spam import model
from linkmeter.indicators.spam.features import SIGNALS_READ
from linkmeter.indicators.spam.scoring import score
from linkmeter.indicators.spam.settings import threshold


class SpamIndicator(Provider):
    """spam.score, spam.flag, spam.reasons and spam.model of every URL (the URL alone when nothing answered)."""

    name = "spam"
    order = 220
    group = "indicator"
    needs = ("url",)
    wants = tuple(signal for signal in SIGNALS_READ if signal not in ROOT_SIGNALS)
    provides = {
        "spam.score": SignalSpec(float, "probability that the link is spam or phishing, calibrated, 0-1", "0-1",
                                 headline="Spam"),
        "spam.flag": SignalSpec(bool, "the score is at or above LINKMETER_SPAM_THRESHOLD"),
        "spam.reasons": SignalSpec(list, "the largest contributions to the score: {feature, value, "
                                         "contribution, text}"),
        "spam.model": SignalSpec(str, "version of the spam model that scored the link"),
    }
    policy = Policy(timeout=1.0, retries=0, cache_ttl=0)

    def __init__(self, *args: Any, now: Callable[[], datetime] | None = None, threshold_value: float | None = None,
                 **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._now = now or (lambda: datetime.now(UTC))
        self.threshold = threshold(os.environ) if threshold_value is None else threshold_value
        # Parse the shipped model and the public suffix list now, not in the first URL's call (its timeout).
        model.load_shipped()
        registered_domain("example.com")
        self.scored = 0  # URLs scored, and the CPU seconds scoring took (`linkmeter bench` reports them)
        self.cpu_seconds = 0.0

    def key(self, signals: Signals) -> str:
        return str(signals["url"])

    async def collect(self, ctx: CallContext, signals: Signals) -> Collected:
        # thread_time: scoring never awaits, so this thread's CPU over it is the scoring's alone.
        started = time.thread_time()
        verdict = score(str(signals["url"]), signals, artifact=model.current(), threshold=self.threshold,
                        now=self._now())
        self.cpu_seconds += time.thread_time() - started
        self.scored += 1
        return Collected(signals=verdict.signals(), raw=None)
