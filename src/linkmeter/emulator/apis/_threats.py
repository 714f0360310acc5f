"""Which domains an emulated threat list holds: part of the world's spam population, by what each domain is.

Each list sees only some spam domains, more of the threat it is about (PhishTank: phishing; URLhaus: malware)
and a few of the others; a clean domain is almost never held (a compromised site). The world's named test
points (``spam*``, ``phish*``, ``malware*``) are held by every list, as the blocklists do. A pure function of
(seed, list, registered domain), drawn from the list's own stream so the lists overlap without agreeing.
"""

from __future__ import annotations

from collections.abc import Mapping

from linkmeter.emulator.world import SPAM_PREFIXES, DomainFacts, World

CLEAN = "clean"  # the shares' key for domains that are not spam


def held(world: World, list_name: str, host: str, shares: Mapping[str, float]) -> DomainFacts | None:
    """The facts of ``host``'s domain when the list ``list_name`` holds it, else None. ``shares`` maps a
    threat (``spam``, ``phishing``, ``malware``) or CLEAN to the share of such domains the list holds."""
    facts = world.domain(host)
    if not facts.registered:
        return None
    if facts.spam and facts.domain.startswith(SPAM_PREFIXES):
        return facts
    share = shares.get(facts.threat or CLEAN, 0.0)
    return facts if world.rng(list_name, facts.domain).random() < share else None
