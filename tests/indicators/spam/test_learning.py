"""Learning from labels: the adaptation tests of issue 11, the poisoning test, weights, holdout, the check."""

from __future__ import annotations

import random
from datetime import timedelta

import pytest
from sklearn.metrics import average_precision_score, roc_auc_score

from linkmeter.indicators.spam import learning
from linkmeter.indicators.spam.learning import Label
from linkmeter.indicators.spam.model import Artifact
from linkmeter.indicators.spam.settings import DEFAULT_THRESHOLD
from tests.indicators.spam.conftest import NOW, WORDS, benign_urls

TH = DEFAULT_THRESHOLD


def rate(scores: list[float]) -> float:
    return sum(1 for s in scores if s >= TH) / len(scores)


def url_scores(artifact: Artifact, urls: list[str]) -> list[float]:
    return learning.scores(artifact, [(url, None) for url in urls], NOW)


@pytest.fixture(scope="module")
def benign() -> list[str]:
    return benign_urls(600, seed=7)


@pytest.mark.parametrize("seed", range(3))
def test_a_new_family_on_a_free_platform_is_learned_from_20_labels(shipped: Artifact, benign: list[str],
                                                                   seed: int) -> None:
    rng = random.Random(seed)
    family = [f"https://{rng.choice(WORDS)}{rng.choice(WORDS)}{rng.randint(10, 99)}.wordpress.com/"
              f"{rng.choice(['bonus', 'casino', 'free-spins', 'jackpot'])}-code" for _ in range(80)]
    platform = [f"https://{rng.choice(WORDS)}-{rng.choice(WORDS)}.wordpress.com/"
                f"{rng.choice(['about', '2024/05/my-post', 'recipes/soup', ''])}" for _ in range(80)]
    assert rate(url_scores(shipped, family)) < 0.2  # the shipped model misses the family
    labels = []
    for i in range(10):
        labels.append(Label(family[i], True, "alice", NOW + timedelta(minutes=2 * i)))
        labels.append(Label(platform[i], False, "alice", NOW + timedelta(minutes=2 * i + 1)))
    adapted = learning.adapt(shipped, labels, now=NOW)
    unseen = family[10:]
    assert all(url not in family[:10] for url in unseen) or len(set(unseen)) > 60
    assert rate(url_scores(adapted, unseen)) >= 0.8
    before, after = rate(url_scores(shipped, benign)), rate(url_scores(adapted, benign))
    assert after - before <= 0.005
    assert rate(url_scores(adapted, platform[10:])) <= rate(url_scores(shipped, platform[10:]))


def test_a_wrongly_flagged_benign_domain_falls_below_the_threshold_within_3_labels(shipped: Artifact) -> None:
    urls = [f"https://my-bakery.example.tk/{page}" for page in ("", "menu", "order", "cakes")]
    assert all(s >= TH for s in url_scores(shipped, urls))
    labels: list[Label] = []
    for count, person in enumerate(["ann", "bob", "cat"], start=1):
        labels.append(Label(urls[count - 1], False, person, NOW + timedelta(minutes=count)))
        adapted = learning.adapt(shipped, labels, now=NOW)
        if all(s < TH for s in url_scores(adapted, urls)):
            break
    assert count <= 3
    assert all(s < TH for s in url_scores(adapted, urls))  # every page of the domain, the unlabelled one too


def test_one_account_labelling_1000_benign_links_spam_cannot_bend_the_model(shipped: Artifact,
                                                                            benign: list[str]) -> None:
    # Mallory labels 1,000 links like everyone's (same made-up small sites) as spam.
    poisoned = benign_urls(1000, seed=99)
    attack = [Label(url, True, "mallory", NOW + timedelta(seconds=i)) for i, url in enumerate(poisoned)]
    assert sum(item.weight for item in learning.weigh(attack)) <= learning.FREE_QUOTA + 1e-9
    before_benign, before_poisoned = rate(url_scores(shipped, benign)), rate(url_scores(shipped, poisoned))
    alone = learning.adapt(shipped, attack, now=NOW)
    # Alone, the account moves benign links like its own by a few points at most (26 points without the caps).
    assert rate(url_scores(alone, benign)) - before_benign <= 0.05
    assert rate(url_scores(alone, poisoned)) - before_poisoned <= 0.05
    honest = [Label(url, False, f"user{i % 4}", NOW) for i, url in enumerate(benign_urls(40, seed=5))]
    with_others = learning.adapt(shipped, attack + honest, now=NOW)
    # With four honest people's 40 labels beside it, it moves nothing.
    assert rate(url_scores(with_others, benign)) - before_benign <= 0.005
    assert rate(url_scores(with_others, poisoned)) - before_poisoned <= 0.005


def test_a_later_label_of_the_same_person_replaces_theirs() -> None:
    first = Label("https://a.example/x", True, "ann", NOW)
    second = Label("http://www.a.example/x/", False, "ann", NOW + timedelta(hours=1))
    (kept,) = learning.weigh([second, first])
    assert kept.label is second


def test_a_labeller_who_disagrees_with_everyone_weighs_less() -> None:
    urls = [f"https://site{i}.example/" for i in range(10)]
    labels = [Label(url, False, person, NOW) for url in urls for person in ("ann", "bob")]
    labels += [Label(url, True, "eve", NOW) for url in urls]
    weights = {item.label.labeller: item.weight for item in learning.weigh(labels)}
    assert weights["ann"] == 1.0
    assert weights["eve"] < 0.25


def test_holdout_keeps_the_newest_labels_and_no_domain_on_both_sides() -> None:
    labels = [Label(f"https://d{i % 7}.example/{i}", i % 2 == 0, "ann", NOW + timedelta(minutes=i)) for i in range(50)]
    train, test = learning.holdout(labels)
    assert min(label.time for label in test) > max(label.time for label in labels[:40]) - timedelta(minutes=1)
    assert len(test) == 10
    held = {label.url.split("/")[2] for label in test}
    assert not any(label.url.split("/")[2] in held for label in train)


def test_the_candidate_check_names_the_figure_that_stopped_it(shipped: Artifact) -> None:
    recent = [Label(url, False, "ann", NOW) for url in benign_urls(30, seed=3)]
    recent += [Label(f"https://paypal-login-verify{i}.example-secure.tk/account/update", True, "bob", NOW)
               for i in range(30)]
    shipped_test = [(label.url, label.is_spam) for label in recent]
    flipped = Artifact(version="bad", algorithm="test", weights={k: -v for k, v in shipped.weights.items()},
                       means=shipped.means, a=shipped.a, b=shipped.b)
    stopped = learning.check_candidate(flipped, shipped, recent, shipped_test, now=NOW)
    assert not stopped.passed
    assert stopped.stopped_by == "recent.pr_auc"
    same = learning.check_candidate(shipped, shipped, recent, shipped_test, now=NOW)
    assert same.passed and same.stopped_by is None


def test_evaluate_matches_scikit_learn_and_names_every_key() -> None:
    rng = random.Random(4)
    truth = [rng.random() < 0.3 for _ in range(400)]
    predicted = [min(1.0, max(0.0, (0.35 if t else 0.0) + rng.random() * 0.65)) for t in truth]
    predicted[:20] = [0.5] * 20  # ties
    found = learning.evaluate(truth, predicted, 0.5)
    assert tuple(found) == learning.METRIC_KEYS
    assert found["n"] == 400 and found["positives"] == sum(truth)
    assert found["roc_auc"] == pytest.approx(roc_auc_score(truth, predicted), abs=1e-6)
    assert found["pr_auc"] == pytest.approx(average_precision_score(truth, predicted), abs=1e-6)
    flagged = [t for t, p in zip(truth, predicted, strict=True) if p >= 0.5]
    assert found["precision_at_threshold"] == pytest.approx(sum(flagged) / len(flagged), abs=1e-6)
    negatives = sorted((p for t, p in zip(truth, predicted, strict=True) if not t), reverse=True)
    bar = negatives[int(0.01 * len(negatives))]
    assert sum(1 for p in negatives if p > bar) <= 0.01 * len(negatives)


def test_evaluate_without_both_classes_gives_none_for_the_ranking_figures() -> None:
    found = learning.evaluate([False, False], [0.1, 0.7], 0.5)
    assert found["roc_auc"] is None and found["recall_at_threshold"] is None and found["precision_at_threshold"] == 0.0
