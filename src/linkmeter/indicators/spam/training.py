"""Fitting a spam model from labelled URLs (scikit-learn, imported only here) and evaluating it honestly.

``train`` fits an L2 logistic regression over the features of ``features.extract`` (the URL's, and the
signals' when an example has them), weighted per example, and Platt-calibrates it on out-of-fold scores
grouped by registered domain, so the calibration never sees a domain it was fitted on. ``evaluate_splits``
reports the figures docs/spam.md lists: a domain-grouped split, a random one (the gap is memorisation), a
shift split (train on .com/.net/.org, test on every other top-level domain: the data set has no source or
time column), and the shortcut baseline (raw length, https and www only) on the same grouped split.
"""

from __future__ import annotations

import csv
import gzip
import io
import math
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from linkmeter.indicators.spam import features as feats
from linkmeter.indicators.spam.learning import Label, evaluate, fpr_at, weigh
from linkmeter.indicators.spam.model import Artifact, schema
from linkmeter.indicators.spam.settings import DEFAULT_THRESHOLD

ALGORITHM = "logistic-regression (scikit-learn liblinear, L2) + Platt calibration + hand rules"
DEFAULT_C = 1.0
DATASET = ("A. Hannousse and S. Yahiouche, 'Towards benchmark datasets for machine learning based website "
           "phishing detection: An experimental study', Engineering Applications of Artificial Intelligence 104 "
           "(2021) 104347; data set 'Web page phishing detection', Mendeley Data, doi:10.17632/c2gw7fy2j4")
LICENCE = "CC BY 4.0"
MAJOR_TLDS = frozenset({"com", "net", "org"})


@dataclass(frozen=True, slots=True)
class Example:
    url: str
    is_spam: bool
    weight: float = 1.0
    signals: Mapping[str, Any] | None = None
    source: str = "shipped"


class DataError(ValueError):
    """A labelled file that cannot be read; ``line`` names the first bad line when there is one."""


def load_labelled(path: Path) -> list[Example]:
    """The examples of the shipped labelled set's CSV (gzip or plain): columns ``url`` and ``status``
    (``phishing`` is spam, ``legitimate`` is not)."""
    raw = path.read_bytes()
    text = gzip.decompress(raw).decode("utf-8") if raw[:2] == b"\x1f\x8b" else raw.decode("utf-8")
    examples = []
    for line, row in enumerate(csv.DictReader(io.StringIO(text)), start=2):
        status = (row.get("status") or "").strip().lower()
        if status not in ("phishing", "legitimate") or not (row.get("url") or "").strip():
            raise DataError(f"{path}:{line}: expected a url and a status of phishing or legitimate")
        examples.append(Example(row["url"].strip(), status == "phishing"))
    return examples


def group_of(url: str) -> str:
    """The split group: the registered domain, or the site itself on a free-hosting platform."""
    norm = feats.normalise(url)
    for suffix in feats.FREE_HOSTING:
        if norm.host.endswith("." + suffix):
            return norm.host[: -len(suffix) - 1].rsplit(".", 1)[-1] + "." + suffix
    return norm.domain or norm.host


def from_labels(labels: Iterable[Label]) -> list[Example]:
    """Examples from people's labels, weighed by ``learning.weigh`` (one account cannot dominate)."""
    return [Example(item.label.url, item.label.is_spam, item.weight, item.label.signals, item.label.source)
            for item in weigh(labels)]


def _matrix(rows: Sequence[Mapping[str, float]], index: dict[str, int] | None = None) -> tuple[Any, dict[str, int]]:
    from scipy.sparse import csr_matrix

    grow = index is None
    index = {} if index is None else index
    data: list[float] = []
    cols: list[int] = []
    indptr = [0]
    for values in rows:
        for name, value in values.items():
            column = index.get(name)
            if column is None:
                if not grow:
                    continue
                column = index[name] = len(index)
            cols.append(column)
            data.append(value)
        indptr.append(len(cols))
    return csr_matrix((data, cols, indptr), shape=(len(rows), len(index))), index


def _features(examples: Sequence[Example], now: datetime) -> list[dict[str, float]]:
    return [feats.extract(e.url, e.signals, now).values for e in examples]


def _fit(rows: Sequence[Mapping[str, float]], y: Sequence[int], w: Sequence[float],
         c: float) -> tuple[Any, dict[str, int]]:
    from sklearn.linear_model import LogisticRegression

    matrix, index = _matrix(rows)
    # url.bias is the intercept (a feature of every row), so liblinear's own intercept is off.
    model = LogisticRegression(C=c, solver="liblinear", fit_intercept=False, max_iter=200)
    model.fit(matrix, list(y), sample_weight=list(w))
    return model, index


def _raw_scores(model: Any, index: dict[str, int], rows: Sequence[Mapping[str, float]]) -> list[float]:
    matrix, _ = _matrix(rows, index)
    return [float(v) for v in model.decision_function(matrix)]


def _platt(raw: Sequence[float], y: Sequence[int], w: Sequence[float]) -> tuple[float, float]:
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression(C=1e6, solver="lbfgs")
    model.fit(np.asarray(raw).reshape(-1, 1), list(y), sample_weight=list(w))
    return float(model.coef_[0][0]), float(model.intercept_[0])


def train(examples: Sequence[Example], labels: Iterable[Label] = (), *, version: str, parent: str | None = None,
          c: float = DEFAULT_C, folds: int = 3, seed: int = 0, now: datetime | None = None,
          provenance: Mapping[str, Any] | None = None, figures: Mapping[str, Any] | None = None,
          progress: Callable[[str], None] | None = None) -> Artifact:
    """A model fitted on ``examples`` plus ``labels`` (weighed: ``learning.weigh``), calibrated on out-of-fold
    scores grouped by domain. Raises ValueError without both classes."""
    from sklearn.model_selection import StratifiedGroupKFold

    now = now or datetime.now(UTC)
    started = time.process_time()
    everything = [*examples, *from_labels(labels)]
    y = [int(e.is_spam) for e in everything]
    if len(set(y)) < 2:
        raise ValueError("training needs both spam and not-spam examples")
    w = [e.weight for e in everything]
    say = progress or (lambda _: None)
    say(f"features of {len(everything)} examples")
    rows = _constant_flags_dropped(_features(everything, now))
    groups = [group_of(e.url) for e in everything]
    out_of_fold = [0.0] * len(rows)
    splitter = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
    for fold, (fit_at, test_at) in enumerate(splitter.split(rows, y, groups), start=1):
        say(f"calibration fold {fold}/{folds}")
        model, index = _fit([rows[i] for i in fit_at], [y[i] for i in fit_at], [w[i] for i in fit_at], c)
        for i, value in zip(test_at, _raw_scores(model, index, [rows[i] for i in test_at]), strict=True):
            out_of_fold[i] = value
    a, b = _platt(out_of_fold, y, w)
    say("final fit")
    model, index = _fit(rows, y, w, c)
    names = sorted(index, key=index.__getitem__)
    weights = {name: float(value) for name, value in zip(names, model.coef_[0], strict=True) if abs(value) >= 1e-4}
    dense = {name for name in index if name.startswith("url.") and name != "url.bias"}
    means = {name: sum(r.get(name, 0.0) for r in rows) / len(rows) for name in sorted(dense)}
    spam = sum(y)
    return Artifact(
        version=version, algorithm=ALGORITHM, weights=weights, means=means, a=a, b=b, parent=parent,
        created=now.isoformat(timespec="seconds"), schema=schema(),
        provenance={"examples": len(everything), "spam": spam, "not_spam": len(everything) - spam,
                    "labels": len(everything) - len(examples), "c": c, "calibration_folds": folds, "seed": seed,
                    "train_cpu_seconds": round(time.process_time() - started, 2), **(provenance or {})},
        figures=dict(figures or {}),
    )


def _constant_flags_dropped(rows: list[dict[str, float]]) -> list[dict[str, float]]:
    """Without the signal features that every row has alike (a missing flag on URL-only data): fitted, they
    become a second bias that vanishes the moment the signal answers, moving the score for no reason."""
    constant = {name for name in rows[0] if name.startswith("sig.") and all(r.get(name) == rows[0][name] for r in rows)}
    if not constant:
        return rows
    return [{name: value for name, value in row.items() if name not in constant} for row in rows]


def _scored(artifact: Artifact, examples: Sequence[Example], now: datetime) -> list[float]:
    from linkmeter.indicators.spam.scoring import logit, probability

    return [probability(logit(artifact, e.url, e.signals, now)) for e in examples]


def figures_of(truth: Sequence[bool], predicted: Sequence[float],
               threshold: float = DEFAULT_THRESHOLD) -> dict[str, Any]:
    """``learning.evaluate``'s figures plus FPR at the threshold and precision at 1 % and 5 % prevalence."""
    found = evaluate(truth, predicted, threshold)
    fpr = fpr_at(truth, predicted, threshold)
    recall = found["recall_at_threshold"]
    found["fpr_at_threshold"] = None if fpr is None else round(fpr, 6)
    for prevalence in (0.01, 0.05):
        key = f"precision_at_threshold_{round(prevalence * 100)}pct_prevalence"
        if fpr is None or recall is None or recall + fpr == 0:
            found[key] = None
        else:
            found[key] = round(prevalence * recall / (prevalence * recall + (1 - prevalence) * fpr), 6)
    return found


def split_domain(examples: Sequence[Example], seed: int = 0, test_share: float = 0.25) -> tuple[list[int], list[int]]:
    from sklearn.model_selection import StratifiedGroupKFold

    folds = max(2, round(1 / test_share))
    splitter = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
    fit_at, test_at = next(splitter.split(examples, [e.is_spam for e in examples], [group_of(e.url) for e in examples]))
    return list(fit_at), list(test_at)


def split_random(examples: Sequence[Example], seed: int = 0, test_share: float = 0.25) -> tuple[list[int], list[int]]:
    from sklearn.model_selection import train_test_split

    fit_at, test_at = train_test_split(list(range(len(examples))), test_size=test_share, random_state=seed,
                                       stratify=[e.is_spam for e in examples])
    return list(fit_at), list(test_at)


def split_shift(examples: Sequence[Example]) -> tuple[list[int], list[int]]:
    """Train on .com/.net/.org hosts, test on every other top-level domain (another population of sites)."""
    def major(e: Example) -> bool:
        return feats.normalise(e.url).host.rsplit(".", 1)[-1] in MAJOR_TLDS
    fit_at = [i for i, e in enumerate(examples) if major(e)]
    test_at = [i for i, e in enumerate(examples) if not major(e)]
    return fit_at, test_at


def shortcut_baseline(fit: Sequence[Example], test: Sequence[Example]) -> list[float]:
    """Scores of a logistic regression on the raw URL's length, https and www only (the shortcut to beat)."""
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    def row(e: Example) -> list[float]:
        text = e.url.strip().lower()
        rest = text.split("://", 1)[-1]
        return [math.log1p(len(text)), float(text.startswith("https://")), float(rest.startswith("www."))]
    model = LogisticRegression().fit(np.array([row(e) for e in fit]), [int(e.is_spam) for e in fit])
    return [float(p) for p in model.predict_proba(np.array([row(e) for e in test]))[:, 1]]


def evaluate_splits(examples: Sequence[Example], *, seed: int = 0, c: float = DEFAULT_C,
                    now: datetime | None = None, progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Figures of the model (and of the shortcut baseline) on the grouped, random and shift splits."""
    now = now or datetime.now(UTC)
    say = progress or (lambda _: None)
    found: dict[str, Any] = {}
    for name, (fit_at, test_at) in (("domain_split", split_domain(examples, seed)),
                                    ("random_split", split_random(examples, seed)),
                                    ("shift_split", split_shift(examples))):
        say(f"evaluating on the {name.replace('_', ' ')}")
        fit = [examples[i] for i in fit_at]
        test = [examples[i] for i in test_at]
        artifact = train(fit, version=f"eval-{name}", c=c, seed=seed, now=now)
        truth = [e.is_spam for e in test]
        found[name] = {"model": figures_of(truth, _scored(artifact, test, now)),
                       "shortcut_baseline": figures_of(truth, shortcut_baseline(fit, test)),
                       "train_n": len(fit)}
    return found


def test_split(examples: Sequence[Example], seed: int = 0) -> list[Example]:
    """The shipped test split (the domain split's test side): what ``learning.check_candidate`` guards."""
    _, test_at = split_domain(examples, seed)
    return [examples[i] for i in test_at]
