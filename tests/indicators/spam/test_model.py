"""The artifact: JSON round trip, the shipped one with its provenance and figures, refusals."""

from __future__ import annotations

import json

import pytest

from linkmeter.indicators.spam.model import Artifact, ArtifactError, load_shipped, schema


def test_the_shipped_model_loads_with_its_provenance_and_figures() -> None:
    shipped = load_shipped()
    assert shipped.schema == schema()
    assert shipped.provenance["licence"] == "CC BY 4.0" and "Hannousse" in shipped.provenance["dataset"]
    for split in ("domain_split", "random_split", "shift_split"):
        figures = shipped.figures[split]
        assert figures["model"]["roc_auc"] > figures["shortcut_baseline"]["roc_auc"]
        assert 0 <= figures["model"]["brier"] <= 0.25


def test_an_artifact_round_trips_through_json() -> None:
    shipped = load_shipped()
    adapted = shipped.with_layers({"ng.12": 0.5}, {"example.com": -3.0})
    again = Artifact.from_json(adapted.to_json())
    assert again == Artifact.from_dict(json.loads(adapted.to_json()))
    assert again.online == {"ng.12": 0.5} and again.memory == {"example.com": -3.0}
    assert again.version == shipped.version and again.a == shipped.a and again.cap == shipped.cap


def test_an_artifact_without_a_cap_is_not_squashed() -> None:
    data = load_shipped().to_dict()
    data["calibration"] = {key: value for key, value in data["calibration"].items() if key != "cap"}
    plain = Artifact.from_dict(data)
    values = {"url.bias": 1.0, "url.ip_host": 1.0, "url.credential_words": 2.0}
    assert plain.cap is None
    assert plain.learned(values) == plain.a * plain.raw_logit(values) + plain.b


@pytest.mark.parametrize("change", [
    {"format": "pickle"}, {"schema": {"version": 0}}, {"weights": {"url.bias": "x"}}, {"weights": {"a": float("nan")}},
    {"calibration": {"a": 1.0, "b": 0.0, "cap": "3"}},
])
def test_a_bad_artifact_is_refused_with_a_clear_error(change: dict[str, object]) -> None:
    data = {**load_shipped().to_dict(), **change}
    with pytest.raises(ArtifactError):
        Artifact.from_dict(data)


def test_not_json_is_refused() -> None:
    with pytest.raises(ArtifactError, match="not JSON"):
        Artifact.from_json(b"\x80\x04pickle")
