"""The spam model artifact: a JSON document (never pickle) with its weights, calibration and provenance.

An ``Artifact`` holds a linear model over ``features`` (``weights``: feature -> weight; ``means``: the
training means of the dense features, so that a reason's contribution is measured from an average URL), its
Platt calibration (``a``, ``b``), the adaptation layers that labels move (``online``: feature -> weight
delta; ``memory``: registered domain -> log-odds), and what it is: ``version``, ``parent``, ``created``,
``algorithm``, the feature ``schema``, ``provenance`` (data, licence, command, labels it saw) and ``figures``
(evaluation). ``to_json`` / ``from_json`` round-trip it exactly; ``load_shipped`` reads the one in the package
(``linkmeter/indicators/spam/data/model.json``, built by ``python -m linkmeter.indicators.spam.build``).

Which artifact scores: ``current()``, the one set by ``use(source)`` (the web side installs a source that
returns the active ``SpamModel`` from the database, cached, so that workers pick up a newly active model
without a restart) or else the shipped one. ``source`` must be cheap and must not block: the indicator calls
it for every URL.
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from importlib import resources
from typing import Any

from linkmeter.indicators.spam.features import NGRAM_BUCKETS, NGRAM_SIZES, SCHEMA_VERSION

FORMAT = "linkmeter-spam-model"
SHIPPED = "model.json"


class ArtifactError(ValueError):
    """The JSON is not a spam model this linkmeter can use (malformed, or of another feature schema)."""


def schema() -> dict[str, Any]:
    """The feature schema this code computes; an artifact must name the same to be used."""
    return {"version": SCHEMA_VERSION, "ngram_buckets": NGRAM_BUCKETS, "ngram_sizes": list(NGRAM_SIZES)}


@dataclass(frozen=True, slots=True)
class Artifact:
    version: str
    algorithm: str
    weights: Mapping[str, float]
    means: Mapping[str, float] = field(default_factory=dict)
    a: float = 1.0  # calibration: calibrated logit = a * raw logit + b
    b: float = 0.0
    cap: float | None = None  # the calibrated learned logit is squashed into (-cap, cap) (None: not at all)
    online: Mapping[str, float] = field(default_factory=dict)
    memory: Mapping[str, float] = field(default_factory=dict)
    parent: str | None = None
    created: str = ""
    schema: Mapping[str, Any] = field(default_factory=schema)
    provenance: Mapping[str, Any] = field(default_factory=dict)
    figures: Mapping[str, Any] = field(default_factory=dict)

    def raw_logit(self, values: Mapping[str, float]) -> float:
        """The learned part before calibration: the weights' dot product with ``values``."""
        weights = self.weights
        return sum(weights.get(name, 0.0) * value for name, value in values.items())

    def learned(self, values: Mapping[str, float]) -> float:
        """The calibrated learned logit, squashed into (-cap, cap) by cap * tanh(logit / cap) (near 0 unchanged,
        order kept): a URL alone never makes the score more certain than the cap, so that the evidence of the
        signals (rules) can still outweigh it."""
        value = self.a * self.raw_logit(values) + self.b
        cap = self.cap
        return value if cap is None else cap * math.tanh(value / cap)

    def logit(self, values: Mapping[str, float]) -> float:
        """Calibrated (clipped) learned logit plus the online layer (no rules, no domain memory)."""
        online = self.online
        shift = sum(online.get(name, 0.0) * value for name, value in values.items()) if online else 0.0
        return self.learned(values) + shift

    def contributions(self, values: Mapping[str, float]) -> dict[str, float]:
        """Per feature, what it adds to ``logit`` against an average training URL: a * w * (x - mean) plus the
        online delta * x (a shrunk by the cap's squashing, when it squashes). The constant (bias, means, b) is
        left out, so these do not sum to the logit."""
        return self.explain(values)[1]

    def explain(self, values: Mapping[str, float]) -> tuple[float, dict[str, float]]:
        """(``logit(values)``, ``contributions(values)``) in one pass over the features (the verdict's path)."""
        get = self.weights.get
        raw = 0.0
        terms: dict[str, float] = {}
        for name, value in values.items():
            w = get(name)
            if w:
                raw += w * value
                terms[name] = w * value
        for name, mean in self.means.items():
            if w := get(name):
                terms[name] = terms.get(name, 0.0) - w * mean
        unclipped = self.a * raw + self.b
        cap = self.cap
        learned = unclipped if cap is None else cap * math.tanh(unclipped / cap)
        a = self.a * (learned / unclipped) if cap is not None and unclipped else self.a
        found = {name: a * term for name, term in terms.items() if term}
        total = learned
        if self.online:
            online = self.online
            for name, value in values.items():
                if d := online.get(name):
                    total += d * value
                    found[name] = found.get(name, 0.0) + d * value
        return total, found

    def domain_logodds(self, domain: str) -> float:
        return self.memory.get(domain, 0.0)

    def with_layers(self, online: Mapping[str, float], memory: Mapping[str, float]) -> Artifact:
        """This model with other adaptation layers (``learning.adapt`` builds them from labels)."""
        return replace(self, online=dict(online), memory=dict(memory))

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT, "version": self.version, "parent": self.parent, "created": self.created,
            "algorithm": self.algorithm, "schema": dict(self.schema),
            "calibration": {"method": "platt", "a": self.a, "b": self.b, "cap": self.cap},
            "means": dict(sorted(self.means.items())), "weights": _sorted(self.weights),
            "online": _sorted(self.online), "memory": dict(sorted(self.memory.items())),
            "provenance": dict(self.provenance), "figures": dict(self.figures),
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1, sort_keys=False, ensure_ascii=False) + "\n"

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Artifact:
        """Raises ArtifactError when ``data`` is not a usable spam model."""
        if not isinstance(data, Mapping) or data.get("format") != FORMAT:
            raise ArtifactError(f"not a {FORMAT} document")
        if data.get("schema") != schema():
            raise ArtifactError(f"feature schema {data.get('schema')!r} is not this linkmeter's {schema()!r}")
        try:
            calibration = data.get("calibration") or {}
            return cls(
                version=str(data["version"]), algorithm=str(data["algorithm"]),
                weights=_floats(data["weights"]), means=_floats(data.get("means") or {}),
                a=_float(calibration.get("a", 1.0)), b=_float(calibration.get("b", 0.0)),
                cap=None if calibration.get("cap") is None else _float(calibration["cap"]),
                online=_floats(data.get("online") or {}), memory=_floats(data.get("memory") or {}),
                parent=None if data.get("parent") is None else str(data["parent"]),
                created=str(data.get("created") or ""), schema=dict(data["schema"]),
                provenance=dict(data.get("provenance") or {}), figures=dict(data.get("figures") or {}),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ArtifactError(f"malformed spam model: {exc}") from exc

    @classmethod
    def from_json(cls, text: str | bytes) -> Artifact:
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise ArtifactError(f"not JSON: {exc}") from exc
        return cls.from_dict(data)


@functools.cache
def load_shipped() -> Artifact:
    """The model shipped in the package (built from the labelled set; see docs/spam.md)."""
    text = resources.files("linkmeter.indicators.spam").joinpath("data", SHIPPED).read_text(encoding="utf-8")
    return Artifact.from_json(text)


_source: Callable[[], Artifact] | None = None


def use(source: Callable[[], Artifact] | None) -> None:
    """Score with what ``source()`` returns from now on (None: the shipped model again)."""
    global _source
    _source = source


def current() -> Artifact:
    """The artifact that scores now: the installed source's, else the shipped one."""
    return _source() if _source is not None else load_shipped()


def _sorted(weights: Mapping[str, float]) -> dict[str, float]:
    return {name: round(value, 6) for name, value in sorted(weights.items()) if round(value, 6)}


def _float(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{value!r} is not a finite number")
    return float(value)


def _floats(data: object) -> dict[str, float]:
    if not isinstance(data, Mapping):
        raise ValueError("expected an object of numbers")
    return {str(name): _float(value) for name, value in data.items()}
