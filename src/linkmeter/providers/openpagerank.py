"""Open PageRank (DomCop): a domain's PageRank-like score (0-10) and global rank, up to 100 domains a request."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from linkmeter.engine.provider import (
    CallContext,
    Collected,
    Policy,
    ProviderError,
    Signals,
    SignalSpec,
)
from linkmeter.engine.urls import registered_domain
from linkmeter.providers._batched import BatchedProvider

API_PATH = "/api/v1.0/getPageRank"
KEY_VARIABLE = "LINKMETER_OPENPAGERANK_API_KEY"


class OpenPageRankProvider(BatchedProvider):
    """One ``GET getPageRank?domains[]=...`` for up to 100 registered domains (header ``API-OPR``). Each
    answer item is matched to its domain by the ``domain`` it echoes; a per-item 404 "Domain not found" is that
    domain's answer (not found: no score, no rank), whatever the other items say."""

    name = "openpagerank"
    order = 80
    group = "authority"
    requires_key = True
    key_url = "https://www.domcop.com/openpagerank/"
    published_limits = "up to 100 domains a request, about 10,000 calls an hour (UNVERIFIED: third-party clients)"
    needs = ("domain",)
    wants = ("page.final_domain",)
    max_batch = 100
    provides = {
        "openpagerank.found": SignalSpec(bool, "Open PageRank knows the domain"),
        "openpagerank.page_rank": SignalSpec(float, "Open PageRank score of the domain, 0-10 (None: not found)",
                                             "0-10"),
        "openpagerank.rank": SignalSpec(int, "the domain's global rank in Open PageRank (None: not found or "
                                             "unranked)", "rank"),
    }
    # REFERENCE §8a (UNVERIFIED, from third-party clients): about 10,000 calls an hour. Scores are updated
    # rarely (`last_updated` is months old), so a day of cache loses nothing.
    policy = Policy(timeout=10.0, retries=2, rate_per_sec=10_000 / 3600, burst=5, cache_ttl=86400.0)
    default_base_url = "https://openpagerank.com"

    def key(self, signals: Signals) -> str:
        name = str(signals.get("page.final_domain") or signals["domain"])
        return registered_domain(name.strip().rstrip(".").lower())

    async def collect_many(self, ctx: CallContext, batch: Sequence[Signals]) -> Sequence[Collected | ProviderError]:
        domains = [self.key(signals) for signals in batch]
        response = await ctx.http.request(
            "GET",
            ctx.config.base_url.rstrip("/") + API_PATH,
            params=[("domains[]", domain) for domain in domains],
            headers={"API-OPR": ctx.config.api_key or "", "Accept": "application/json"},
            accept=(200, 401, 403),
        )
        try:
            payload = response.json()
        except ProviderError:
            if response.status == 200:
                raise
            payload = {}  # a refused key, whatever the body: parse_response names the variable
        items = parse_response(payload, response.status)
        last_updated = payload.get("last_updated") if isinstance(payload, dict) else None
        return [outcome(domain, items.get(domain), last_updated) for domain in domains]


def parse_response(payload: Any, status: int = 200) -> dict[str, Mapping[str, Any]]:
    """The answer's items by the (lower-case) domain each echoes. A refused key raises a ProviderError naming
    the variable to fix; so does any answer that is not OPR's envelope."""
    if isinstance(payload, dict) and (payload.get("status") is False or status in (401, 403)):
        error = str(payload.get("error") or "").strip() or f"HTTP {status}"
        raise ProviderError(f"Open PageRank refused the API key ({error}): check {KEY_VARIABLE}",
                            retryable=False, status=status)
    if status != 200 or not isinstance(payload, dict) or not isinstance(payload.get("response"), list):
        raise ProviderError(f"unexpected Open PageRank answer (HTTP {status}): no 'response' list", status=status)
    if payload.get("status_code") not in (None, 200, "200"):
        raise ProviderError(f"Open PageRank answered status_code {payload.get('status_code')!r}: "
                            f"{payload.get('error') or 'no reason given'}")
    items: dict[str, Mapping[str, Any]] = {}
    for item in payload["response"]:
        if isinstance(item, dict) and isinstance(item.get("domain"), str):
            items.setdefault(item["domain"].strip().rstrip(".").lower(), item)
    return items


def outcome(domain: str, item: Mapping[str, Any] | None, last_updated: object = None) -> Collected | ProviderError:
    """One domain's result: its item's signals, "not found" for a 404 item, an error for any other."""
    if item is None:
        return ProviderError(f"Open PageRank's answer has no item for {domain}", retryable=False)
    raw = {"item": dict(item), "last_updated": last_updated}
    code = _int(item.get("status_code"))
    if code == 404:
        return Collected(signals=not_found(), raw=raw)
    if code != 200:
        reason = str(item.get("error") or "no reason given")
        return ProviderError(f"Open PageRank: {reason} (status {item.get('status_code')!r}) for {domain}",
                             retryable=False)
    return Collected(signals=found(item), raw=raw)


def found(item: Mapping[str, Any]) -> dict[str, Any]:
    """The signals of a 200 item: ``rank`` arrives as a string (or null)."""
    page_rank = _float(item.get("page_rank_decimal"))
    if page_rank is None:
        page_rank = _float(item.get("page_rank_integer"))
    rank = _int(item.get("rank"))
    return {
        "openpagerank.found": True,
        "openpagerank.page_rank": None if page_rank is None else round(min(10.0, max(0.0, page_rank)), 2),
        "openpagerank.rank": rank if rank is not None and rank > 0 else None,
    }


def not_found() -> dict[str, Any]:
    """A domain OPR does not know has no score and no rank: never the 0 its 404 item carries."""
    return {"openpagerank.found": False, "openpagerank.page_rank": None, "openpagerank.rank": None}


def _int(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value)
    if isinstance(value, str):
        text = value.strip().replace(",", "")
        return int(text) if text.isdigit() else None
    return None


def _float(value: object) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.strip())
        except ValueError:
            return None
    return None
