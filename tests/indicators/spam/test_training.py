"""Training breaks the labelled set's home-page shortcut: the path's shape carries no label, the URL alone is
never certain, and a URL with a path on a benign, old, popular domain is not flagged."""

from __future__ import annotations

import math
from collections import defaultdict

from linkmeter.indicators.spam import scoring, training
from linkmeter.indicators.spam.model import Artifact
from linkmeter.indicators.spam.training import Example

from .conftest import NOW, WORDS


def _examples() -> list[Example]:
    """The trap in miniature: legitimate rows mostly home pages, phishing rows mostly with paths (and home
    pages, docs pages and long paths with a query in both classes)."""
    found = []
    for i, word in enumerate(WORDS):
        found.append(Example(f"https://{word}{i}.com/", False))
        found.append(Example(f"https://{word}{i}.org/", False))
        found.append(Example(f"https://{word}{i}.net/docs/{word}", False))
        found.append(Example(f"http://{word}-{i}.info/account/verify/{word}/login.php?id={i}", True))
        found.append(Example(f"http://{word}{i}.xyz/", True))
    found += [Example(f"https://shop{i}.example.com/account/orders/history/2024?page={i}&sort=date", False)
              for i in range(5)]
    found.append(Example("http://garden0.top/docs/garden", True))
    return found


def test_the_path_balance_makes_each_path_shape_weigh_alike_in_both_classes() -> None:
    examples = _examples()
    factors = training.path_balance(examples)
    share: dict[bool, dict[tuple[int, bool], float]] = {True: defaultdict(float), False: defaultdict(float)}
    for e, factor in zip(examples, factors, strict=True):
        share[e.is_spam][training.path_shape(e.url)] += factor
    for by_shape in share.values():
        total = sum(by_shape.values())
        for shape in by_shape:
            by_shape[shape] /= total
    assert set(share[True]) == set(share[False])
    for shape in share[True]:
        pooled = sum(training.path_shape(e.url) == shape for e in examples) / len(examples)
        assert math.isclose(share[True][shape], pooled) and math.isclose(share[False][shape], pooled), shape
    # total weight per class is unchanged: the balance moves weight between shapes, not between classes
    for is_spam in (True, False):
        assert math.isclose(sum(f for e, f in zip(examples, factors, strict=True) if e.is_spam == is_spam),
                            sum(1 for e in examples if e.is_spam == is_spam))


def test_the_learned_part_is_squashed_into_the_cap_keeping_the_order(shipped: Artifact) -> None:
    assert shipped.cap == training.DEFAULT_CAP
    urls = ["http://192.168.0.1/paypal/webscr/login.php?cmd=update&session=1", "https://example.org/",
            "http://secure-paypal.com.account-verify.xyz/signin/", "https://en.wikipedia.org/wiki/Budget"]
    from linkmeter.indicators.spam import features as feats

    learned = [shipped.learned(feats.extract(url).values) for url in urls]
    raw = [shipped.a * shipped.raw_logit(feats.extract(url).values) + shipped.b for url in urls]
    assert all(abs(value) < shipped.cap for value in learned)
    assert sorted(range(len(urls)), key=learned.__getitem__) == sorted(range(len(urls)), key=raw.__getitem__)


def test_the_verdict_explains_the_same_logit_as_the_fast_path(shipped: Artifact) -> None:
    url = "http://secure-paypal.com.account-verify.xyz/signin/"
    verdict = scoring.score(url, None, artifact=shipped, now=NOW)
    assert math.isclose(verdict.logit, scoring.logit(shipped, url, None, NOW))


def test_a_path_on_a_benign_old_popular_domain_is_not_flagged(shipped: Artifact) -> None:
    # The demo's false positives: deep links of long-lived, ranked, archived sites flagged for having a path.
    signals = {"domain": "example.org", "tranco.rank": 40_000, "rdap.domain_age_days": 15 * 365,
               "openpagerank.page_rank": 5.0, "wayback.capture_count": 900,
               "wayback.first_capture": "2012-03-01T00:00:00Z", "engagement.total": 800}
    urls = [f"https://{word}.example.org/2024/05/{word}-club-meets-on-tuesday?page=2" for word in WORDS]
    flagged = [url for url in urls if scoring.score(url, signals, artifact=shipped, now=NOW).flag]
    assert flagged == []


def test_a_url_with_a_path_is_not_flagged_by_the_url_part_alone_for_having_one(shipped: Artifact) -> None:
    # Plain article paths on plain hosts: the URL model alone must not flag most of them (it did: any path
    # looked like phishing, as the labelled set's legitimate rows are mostly home pages).
    urls = [f"https://{a}{b}.com/blog/2023/04/our-{a}-{b}-notes" for a in WORDS[:10] for b in WORDS[10:]]
    flagged = sum(scoring.score(url, None, artifact=shipped, now=NOW).flag for url in urls)
    assert flagged <= len(urls) // 10


def test_home_page_probes_give_legitimate_home_pages_other_legitimate_paths() -> None:
    test = [Example("https://www.a.com/", False), Example("https://b.org/wiki/Thing", False),
            Example("https://c.net", False), Example("http://phish.xyz/login", True)]
    probes = training.home_page_probes(test)
    assert [p.url for p in probes] == ["https://a.com/wiki/Thing", "https://c.net/wiki/Thing"]
    assert not any(p.is_spam for p in probes)
    figures = training.shortcut_figures(test, [0.9, 0.1, 0.2, 0.8], [0.7, 0.2])
    assert figures == {"fpr_legit_with_path": 0.0, "fpr_legit_home_page": 0.5,
                       "fpr_home_page_plus_legit_path": 0.5, "probes": 2}


def test_repeated_examples_become_one_row_with_their_weights_summed() -> None:
    examples = [Example("https://a.com/x", True), Example("https://a.com/x", True, 2.0),
                Example("https://a.com/x", False), Example("https://b.com/", False)]
    rows = training.merged(examples)
    assert [(e.url, e.is_spam, e.weight) for e in rows] == [("https://a.com/x", True, 3.0),
                                                             ("https://a.com/x", False, 1.0),
                                                             ("https://b.com/", False, 1.0)]
