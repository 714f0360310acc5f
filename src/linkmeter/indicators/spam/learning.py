"""Learning from people's labels, as pure functions: label weights, the adaptation layers, the candidate check
and the evaluation figures.

How labels are weighed (``weigh``), so that one account cannot bend the model alone:

1. A later label of the same labeller on the same URL (normalised) replaces theirs.
2. Agreement: on URLs other labellers labelled too, a labeller agrees or disagrees with the others' majority;
   their trust is (agree + 1) / (agree + disagree + 2) * 2, clipped to [MIN_TRUST, 1] (no overlap: 1).
3. Agreement with the model (``adapt`` only): the share of a labeller's labels on which the current model
   agrees, with MODEL_PSEUDO_LABELS = 5 agreeing pseudo-labels each side: trust is multiplied by
   2 * (agreeing + 5) / (labels + 10), clipped to [MIN_TRUST, 1]. Someone teaching a new family (half their
   labels new spam the model misses, half benign pages it gets right) keeps full trust; an account whose
   labels mostly contradict the model loses most of it until others agree with it.
4. Share cap: a labeller's labels weigh at most ``max(FREE_QUOTA, SHARE_CAP * labels of everyone else)`` in
   total (FREE_QUOTA = 20, SHARE_CAP = 0.2), spread evenly over their labels. A single account labelling
   1,000 links therefore counts as 20 labels at most, and as at most a fifth of the others' once there are
   enough of them.

weight(label) = trust(labeller) * min(1, quota(labeller) / labels(labeller)).

The adaptation layers (``adapt``), rebuilt from the weighted labels whenever labels change:

- the online layer: weight deltas d over every feature, fitted by a few epochs of SGD on the weighted log-loss
  of (base logit + d . x), L2-regularised towards 0 (``ONLINE_L2``), so a few labels move the URLs like them
  but cannot wipe the base model out; it learns the n-grams and signal values only (the bias, the missing
  flags and the dense URL measures are on nearly every row, so a delta there would move every score at
  once: a retrain learns them);
- the domain memory: for each registered domain, G * (S - H) / (S + H + C) log-odds, where S and H are the
  spam and not-spam weight on it, each labeller counting at most 1 per domain (``MEMORY_GAIN`` G = 6,
  ``MEMORY_PRIOR`` C = 1): three people saying "not spam" move a domain by -4.5.
"""

from __future__ import annotations

import math
import random
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from linkmeter.indicators.spam import features as feats
from linkmeter.indicators.spam.model import Artifact
from linkmeter.indicators.spam.rules import apply
from linkmeter.indicators.spam.scoring import logit, probability
from linkmeter.indicators.spam.settings import DEFAULT_THRESHOLD

FREE_QUOTA = 20.0
MODEL_PSEUDO_LABELS = 5.0
SHARE_CAP = 0.2
MIN_TRUST = 0.1
ONLINE_L2 = 0.05
ONLINE_EPOCHS = 8
ONLINE_RATE = 0.5
MEMORY_GAIN = 6.0
MEMORY_PRIOR = 1.0
TOLERANCE = 0.02  # how much a candidate may lose on the shipped test split (ROC-AUC and PR-AUC points / 100)
METRIC_KEYS = ("n", "positives", "roc_auc", "pr_auc", "recall_at_1pct_fpr", "precision_at_threshold",
               "recall_at_threshold", "brier")


@dataclass(frozen=True, slots=True)
class Label:
    """One person's label of one URL. ``signals``: the link's stored signals, when it was analysed."""

    url: str
    is_spam: bool
    labeller: str
    time: datetime
    source: str = "ui"
    signals: Mapping[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class Weighted:
    label: Label
    weight: float


def weigh(labels: Iterable[Label], *, free_quota: float = FREE_QUOTA, share_cap: float = SHARE_CAP,
          model_says: Callable[[Label], bool] | None = None) -> list[Weighted]:
    """The labels that count (latest per labeller and URL), each with its weight (see the module docstring).
    ``model_says(label)``: the current model's verdict on the label's URL, for the model-agreement trust."""
    latest: dict[tuple[str, str], Label] = {}
    for label in sorted(labels, key=lambda item: item.time):
        latest[(label.labeller, feats.normalise(label.url).text)] = label
    votes: dict[str, dict[str, bool]] = defaultdict(dict)  # url -> labeller -> is_spam
    per_labeller: dict[str, int] = defaultdict(int)
    for (labeller, url), label in latest.items():
        votes[url][labeller] = label.is_spam
        per_labeller[labeller] += 1
    agree: dict[str, int] = defaultdict(int)
    disagree: dict[str, int] = defaultdict(int)
    for by in votes.values():
        if len(by) < 2:
            continue
        for labeller, vote in by.items():
            others = [v for name, v in by.items() if name != labeller]
            spam = sum(others)
            if spam * 2 == len(others):
                continue  # the others are split: no majority to agree with
            if (spam * 2 > len(others)) == vote:
                agree[labeller] += 1
            else:
                disagree[labeller] += 1
    total = sum(per_labeller.values())
    weight_of: dict[str, float] = {}
    with_model: dict[str, int] = defaultdict(int)
    if model_says is not None:
        for (labeller, _), label in latest.items():
            with_model[labeller] += model_says(label) == label.is_spam
    for labeller, count in per_labeller.items():
        trust = min(1.0, max(MIN_TRUST, 2 * (agree[labeller] + 1) / (agree[labeller] + disagree[labeller] + 2)))
        if model_says is not None:
            prior = MODEL_PSEUDO_LABELS
            trust *= min(1.0, max(MIN_TRUST, 2 * (with_model[labeller] + prior) / (count + 2 * prior)))
        quota = max(free_quota, share_cap * (total - count))
        weight_of[labeller] = trust * min(1.0, quota / count)
    return [Weighted(label, weight_of[label.labeller]) for label in latest.values()]


@dataclass(slots=True)
class _Row:
    values: dict[str, float]
    base: float
    y: float
    weight: float
    domain: str
    labeller: str


def adapt(artifact: Artifact, labels: Iterable[Label], *, now: datetime | None = None, seed: int = 0,
          l2: float = ONLINE_L2, epochs: int = ONLINE_EPOCHS, rate: float = ONLINE_RATE) -> Artifact:
    """``artifact`` with the online layer and the domain memory learned from ``labels`` (its own replaced)."""
    now = now or datetime.now(UTC)
    bare = artifact.with_layers({}, {})
    labels = list(labels)
    # Many labels share a URL (several people, one link): each (URL, signals) is extracted and scored once.
    seen: dict[tuple[str, int], tuple[feats.Features, float]] = {}

    def base_of(label: Label) -> tuple[feats.Features, float]:
        key = (label.url, id(label.signals))
        if (known := seen.get(key)) is None:
            found = feats.extract(label.url, label.signals or {}, now)
            known = seen[key] = (found, bare.logit(found.values) + sum(h.logodds for h in apply(label.signals or {},
                                                                                                 now)))
        return known

    weighted = weigh(labels, model_says=lambda label: base_of(label)[1] >= 0)  # base: the bare model's logit
    rows = []
    for item in weighted:
        label = item.label
        found, base = base_of(label)
        domain = found.norm.domain if found.norm else feats.normalise(label.url).domain
        rows.append(_Row(found.values, base, float(label.is_spam), item.weight, domain, label.labeller))
    return artifact.with_layers(_online(rows, l2=l2, epochs=epochs, rate=rate, seed=seed), _memory(rows))


def _online(rows: list[_Row], *, l2: float, epochs: int, rate: float, seed: int) -> dict[str, float]:
    delta: dict[str, float] = defaultdict(float)
    if not rows:
        return {}
    order = list(range(len(rows)))
    shuffle = random.Random(seed).shuffle
    # The learnable features of each row, picked once (not on every epoch): only they have deltas.
    learnable = [[(name, value) for name, value in row.values.items() if _online_feature(name)] for row in rows]
    step = 0
    for _ in range(epochs):
        shuffle(order)
        for index in order:
            row, pairs = rows[index], learnable[index]
            step += 1
            lr = rate / math.sqrt(1 + step / max(1, len(rows)))
            z = row.base + sum(delta[name] * value for name, value in pairs)
            g = row.weight * (probability(z) - row.y)
            for name, value in pairs:
                d = delta[name]
                delta[name] = d - lr * (g * value + l2 * d)
    return {name: value for name, value in delta.items() if abs(value) > 1e-6}


def _online_feature(name: str) -> bool:
    """The online layer learns n-grams and signal values only: the bias, the missing flags and the dense URL
    measures (lengths, ratios) are on nearly every row, so a delta on them would move every score at once."""
    return name.startswith("ng.") or (name.startswith("sig.") and not name.endswith(".missing"))


def _memory(rows: list[_Row]) -> dict[str, float]:
    share: dict[tuple[str, str], list[float]] = defaultdict(lambda: [0.0, 0.0])  # (domain, labeller) -> S, H
    for row in rows:
        share[(row.domain, row.labeller)][0 if row.y else 1] += row.weight
    spam: dict[str, float] = defaultdict(float)
    ham: dict[str, float] = defaultdict(float)
    for (domain, _), (s, h) in share.items():
        scale = min(1.0, 1.0 / (s + h)) if s + h > 0 else 0.0  # one labeller counts at most 1 per domain
        spam[domain] += s * scale
        ham[domain] += h * scale
    memory = {}
    for domain in spam.keys() | ham.keys():
        s, h = spam[domain], ham[domain]
        value = MEMORY_GAIN * (s - h) / (s + h + MEMORY_PRIOR)
        if domain and abs(value) > 1e-6:
            memory[domain] = value
    return memory


def holdout(labels: Sequence[Label], fraction: float = 0.2) -> tuple[list[Label], list[Label]]:
    """(train, test): the newest ``fraction`` of labels by time is the test; train keeps the older labels of
    other registered domains only, so no domain is on both sides."""
    ordered = sorted(labels, key=lambda label: label.time)
    cut = len(ordered) - max(1, round(len(ordered) * fraction)) if ordered else 0
    test = ordered[cut:]
    held = {feats.normalise(label.url).domain for label in test}
    train = [label for label in ordered[:cut] if feats.normalise(label.url).domain not in held]
    return train, test


def scores(artifact: Artifact, items: Iterable[tuple[str, Mapping[str, Any] | None]],
           now: datetime | None = None) -> list[float]:
    """The score of each (url, signals) pair."""
    now = now or datetime.now(UTC)
    # A URL labelled by several people is scored once; the signals are kept with the score, so that their id
    # is not reused by another mapping while the cache lives.
    seen: dict[tuple[str, int], tuple[float, object]] = {}
    found = []
    for url, signals in items:
        key = (url, id(signals))
        if (known := seen.get(key)) is None:
            known = seen[key] = (probability(logit(artifact, url, signals, now)), signals)
        found.append(known[0])
    return found


def evaluate(truth: Sequence[bool], predicted: Sequence[float], threshold: float = DEFAULT_THRESHOLD) -> dict[str, Any]:
    """n, positives, roc_auc, pr_auc (average precision), recall_at_1pct_fpr, precision_at_threshold,
    recall_at_threshold, brier. Figures that need both classes are None without them."""
    n = len(truth)
    positives = sum(1 for t in truth if t)
    negatives = n - positives
    flagged = [t for t, p in zip(truth, predicted, strict=True) if p >= threshold]
    result: dict[str, Any] = {
        "n": n, "positives": positives, "roc_auc": None, "pr_auc": None, "recall_at_1pct_fpr": None,
        "precision_at_threshold": (sum(flagged) / len(flagged)) if flagged else None,
        "recall_at_threshold": (sum(flagged) / positives) if positives else None,
        "brier": (sum((p - float(t)) ** 2 for t, p in zip(truth, predicted, strict=True)) / n) if n else None,
    }
    if positives and negatives:
        result["roc_auc"] = _roc_auc(truth, predicted)
        result["pr_auc"] = _average_precision(truth, predicted)
        result["recall_at_1pct_fpr"] = _recall_at_fpr(truth, predicted, 0.01)
    return {key: (round(value, 6) if isinstance(value, float) else value) for key, value in result.items()}


def fpr_at(truth: Sequence[bool], predicted: Sequence[float], threshold: float) -> float | None:
    negatives = [p for t, p in zip(truth, predicted, strict=True) if not t]
    return sum(1 for p in negatives if p >= threshold) / len(negatives) if negatives else None


@dataclass(frozen=True, slots=True)
class Check:
    """The candidate check's outcome: ``stopped_by`` names the first figure that failed (None: passed)."""

    passed: bool
    stopped_by: str | None
    figures: dict[str, dict[str, Any]] = field(default_factory=dict)
    message: str = ""


def check_candidate(candidate: Artifact, active: Artifact, recent: Sequence[Label],
                    shipped_test: Sequence[tuple[str, bool]], *, tolerance: float = TOLERANCE,
                    threshold: float = DEFAULT_THRESHOLD, now: datetime | None = None) -> Check:
    """May ``candidate`` replace ``active``? On ``recent`` (the newest labels, held out by time and domain:
    ``holdout``) its PR-AUC and recall at 1 % FPR must be at least the active model's; on ``shipped_test``
    (URL, is_spam) its ROC-AUC and PR-AUC may be at most ``tolerance`` below. Recent figures that need both
    classes are skipped when the recent labels lack one."""
    now = now or datetime.now(UTC)
    weighted = {id(item.label): item.weight for item in weigh(recent)}
    kept = [label for label in recent if id(label) in weighted]
    truth = [label.is_spam for label in kept]
    items = [(label.url, label.signals) for label in kept]
    figures = {
        "recent.candidate": evaluate(truth, scores(candidate, items, now), threshold),
        "recent.active": evaluate(truth, scores(active, items, now), threshold),
    }
    test_truth = [spam for _, spam in shipped_test]
    test_items = [(url, None) for url, _ in shipped_test]
    figures["shipped_test.candidate"] = evaluate(test_truth, scores(candidate, test_items, now), threshold)
    figures["shipped_test.active"] = evaluate(test_truth, scores(active, test_items, now), threshold)
    checks = [("recent", "pr_auc", 0.0), ("recent", "recall_at_1pct_fpr", 0.0),
              ("shipped_test", "roc_auc", tolerance), ("shipped_test", "pr_auc", tolerance)]
    for split, key, allowed in checks:
        new, old = figures[f"{split}.candidate"][key], figures[f"{split}.active"][key]
        if new is None or old is None:
            continue
        if new < old - allowed - 1e-9:
            return Check(False, f"{split}.{key}", figures,
                         f"{split} {key} {new:.4f} is below the active model's {old:.4f}"
                         + (f" minus the tolerance {allowed:g}" if allowed else ""))
    return Check(True, None, figures, "the candidate is at least as good as the active model")


def _roc_auc(truth: Sequence[bool], predicted: Sequence[float]) -> float:
    ranked = sorted(zip(predicted, truth, strict=True), key=lambda pair: pair[0])
    rank_sum = 0.0
    index = 0
    while index < len(ranked):
        end = index
        while end + 1 < len(ranked) and ranked[end + 1][0] == ranked[index][0]:
            end += 1
        mid = (index + end) / 2 + 1  # average rank of ties
        rank_sum += mid * sum(1 for k in range(index, end + 1) if ranked[k][1])
        index = end + 1
    positives = sum(1 for t in truth if t)
    negatives = len(truth) - positives
    return (rank_sum - positives * (positives + 1) / 2) / (positives * negatives)


def _average_precision(truth: Sequence[bool], predicted: Sequence[float]) -> float:
    ranked = sorted(zip(predicted, truth, strict=True), key=lambda pair: -pair[0])
    positives = sum(1 for t in truth if t)
    seen = hits = 0
    total = 0.0
    index = 0
    while index < len(ranked):
        end = index
        while end + 1 < len(ranked) and ranked[end + 1][0] == ranked[index][0]:
            end += 1
        group_hits = sum(1 for k in range(index, end + 1) if ranked[k][1])
        seen += end - index + 1
        hits += group_hits
        total += group_hits / positives * (hits / seen)
        index = end + 1
    return total


def _recall_at_fpr(truth: Sequence[bool], predicted: Sequence[float], fpr: float) -> float:
    """The highest recall at a threshold whose false-positive rate is at most ``fpr``."""
    negatives = sorted((p for t, p in zip(truth, predicted, strict=True) if not t), reverse=True)
    allowed = math.floor(fpr * len(negatives))
    # A threshold just above the (allowed+1)-th highest negative score lets at most ``allowed`` through.
    bar = negatives[allowed] if allowed < len(negatives) else -math.inf
    positives = [p for t, p in zip(truth, predicted, strict=True) if t]
    return sum(1 for p in positives if p > bar) / len(positives)
