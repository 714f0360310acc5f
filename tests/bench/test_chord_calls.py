"""The 2012 design's calls take each provider's own timeout and cache TTL, and its engagement is the indicator's."""

from __future__ import annotations

from linkmeter.bench.chord_calls import CACHE_TTLS, ROUND_TWO, TIMEOUTS
from linkmeter.providers.registry import PROVIDERS


def test_every_call_the_bench_makes_has_its_providers_timeout_and_ttl() -> None:
    policies = {cls.name: cls.policy for cls in PROVIDERS}
    for name in ("page", *ROUND_TWO):
        assert TIMEOUTS[name] == policies[name].timeout
        assert CACHE_TTLS[name] == policies[name].cache_ttl
        assert isinstance(CACHE_TTLS[name], int)  # Redis SET EX takes whole seconds
