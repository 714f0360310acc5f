"""An unknown key id costs what a wrong secret for a real id costs (statistically, over thousands of tries,
interleaved so the machine's drift hits both alike), whether the key's record is cached or read from the
database. Measured on the verifier itself: the HTTP path around it is the same for both."""

from __future__ import annotations

import random
import time

import pytest

from linkmeter.web.accounts import keys
from linkmeter.web.accounts.authn import verifier
from tests.web.accounts.conftest import Holder

TRIES = 2000


def wrong_secret_for(key_id: str) -> str:
    body = f"{key_id}_{keys._random(keys.SECRET_LENGTH)}"
    return body + keys.checksum(body)


def probability_of_superiority(a: list[float], b: list[float]) -> float:
    """P(a random sample of ``a`` > one of ``b``) + half the ties (Vargha-Delaney A): 0.5 is no difference."""
    ranked = sorted([(value, 0) for value in a] + [(value, 1) for value in b])
    rank_sum, i = 0.0, 0
    while i < len(ranked):
        j = i
        while j < len(ranked) and ranked[j][0] == ranked[i][0]:
            j += 1
        average = (i + j + 1) / 2  # ranks are 1-based
        rank_sum += average * sum(1 for k in range(i, j) if ranked[k][1] == 0)
        i = j
    return (rank_sum - len(a) * (len(a) + 1) / 2) / (len(a) * len(b))


def timings(alice: Holder, *, cold: bool) -> tuple[list[float], list[float]]:
    check = verifier()
    known = alice.key.id_public
    unknown_ids = [keys.generate()[1].key_id for _ in range(TRIES)]
    unknown: list[float] = []
    wrong: list[float] = []
    order = [True] * TRIES + [False] * TRIES
    random.Random(12).shuffle(order)
    u = 0
    fixed_unknown = unknown_ids[0]
    for is_unknown in order:
        if is_unknown:
            key_id = unknown_ids[u] if cold else fixed_unknown
            u += 1
        else:
            key_id = known
        presented = wrong_secret_for(key_id)
        if cold:
            check.cache.clear()
        start = time.perf_counter()
        verdict = check.check(presented)
        elapsed = time.perf_counter() - start
        assert verdict.code == "invalid_key"
        (unknown if is_unknown else wrong).append(elapsed)
    return unknown, wrong


@pytest.mark.django_db
@pytest.mark.parametrize("cold", [True, False], ids=["read from the database", "cached"])
def test_unknown_ids_cost_what_wrong_secrets_cost(alice: Holder, cold: bool) -> None:
    verifier().check(wrong_secret_for(keys.generate()[1].key_id))  # warm up the code paths
    unknown, wrong = timings(alice, cold=cold)
    effect = probability_of_superiority(unknown, wrong)
    median_unknown, median_wrong = sorted(unknown)[TRIES // 2], sorted(wrong)[TRIES // 2]
    # Within 0.3..0.7 (0.5: indistinguishable) and medians within 3 %: a small effect at most. Measured cold on
    # SQLite: unknown ids about 1 % (1.3 us of 113 us) faster, an effect near 0.4 whose source is not found
    # (both read one row by the same statement); far below a network's jitter, but stated, not hidden.
    assert 0.3 <= effect <= 0.7, (effect, median_unknown, median_wrong)
    assert abs(median_unknown - median_wrong) <= 0.03 * median_wrong, (effect, median_unknown, median_wrong)
