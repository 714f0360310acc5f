"""Moz Links API v2 ``url_metrics``: Domain and Page Authority, Spam Score and links, up to 50 URLs a request."""

from __future__ import annotations

import base64
import json
import math
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

from linkmeter.engine.provider import (
    CallContext,
    Collected,
    Policy,
    ProviderError,
    Signals,
    SignalSpec,
)
from linkmeter.providers._batched import BatchedProvider

API_PATH = "/v2/url_metrics"
KEY_VARIABLE = "LINKMETER_MOZ_API_KEY"


class MozProvider(BatchedProvider):
    """One ``POST url_metrics {"targets": [...]}`` for up to 50 URLs, with HTTP Basic auth from the key
    ``access_id:secret_key``. Results come in the order of the targets (Moz's documented rule for batched
    url-metrics); each is checked against its target's host (``subdomain``) before it is taken as its
    answer, and a result that names another host fails that URL only."""

    name = "moz"
    order = 81
    group = "authority"
    requires_key = True
    key_url = "https://moz.com/products/api"
    published_limits = ("up to 50 targets a request; rows a month by plan (UNVERIFIED); "
                        "the free tier allowed one request every 10 seconds (UNVERIFIED)")
    needs = ("url",)
    wants = ("page.canonical_url", "page.final_url")
    max_batch = 50
    provides = {
        "moz.domain_authority": SignalSpec(int, "Moz Domain Authority of the URL's root domain, 1-100", "0-100"),
        "moz.page_authority": SignalSpec(int, "Moz Page Authority of the URL, 1-100", "0-100"),
        "moz.spam_score": SignalSpec(int, "Moz Spam Score of the URL's subdomain (None: Moz has none)", "%"),
        "moz.linking_root_domains": SignalSpec(int, "root domains linking to the URL's root domain", "domains"),
        "moz.linking_pages": SignalSpec(int, "external pages linking to the URL", "pages"),
    }
    # REFERENCE §8b: quotas are UNVERIFIED; one request every 10 s is the old free tier's limit, a safe
    # default (a paid plan raises it with LINKMETER_MOZ_RATE). Link metrics move slowly: a day of cache.
    policy = Policy(timeout=20.0, retries=2, rate_per_sec=0.1, burst=1, cache_ttl=86400.0)
    default_base_url = "https://lsapi.seomoz.com"

    def disabled_reason(self) -> str | None:
        reason = super().disabled_reason()
        if reason is None and not split_key(self.config.api_key or ""):
            return f"{KEY_VARIABLE} must be access_id:secret_key (Moz's Access ID and Secret Key joined by ':')"
        return reason

    def key(self, signals: Signals) -> str:
        return str(signals.get("page.canonical_url") or signals.get("page.final_url") or signals["url"])

    async def collect_many(self, ctx: CallContext, batch: Sequence[Signals]) -> Sequence[Collected | ProviderError]:
        targets = [self.key(signals) for signals in batch]
        token = base64.b64encode((ctx.config.api_key or "").encode()).decode()
        response = await ctx.http.request(
            "POST",
            ctx.config.base_url.rstrip("/") + API_PATH,
            json_body={"targets": targets},
            headers={"Authorization": f"Basic {token}", "Accept": "application/json"},
            accept=(200, 401, 403),
        )
        if response.status in (401, 403):
            raise ProviderError(f"Moz refused the credentials (HTTP {response.status}: {error_text(response.body)}): "
                                f"check {KEY_VARIABLE}", retryable=False, status=response.status)
        results = parse_results(response.json(), len(targets))
        return [outcome(target, result) for target, result in zip(targets, results, strict=True)]


def split_key(key: str) -> tuple[str, str] | None:
    """(access_id, secret_key) of ``access_id:secret_key``; None when either part is missing."""
    access_id, sep, secret = key.partition(":")
    return (access_id, secret) if sep and access_id.strip() and secret.strip() else None


def error_text(body: bytes) -> str:
    """Moz's own words from an error body (``error_message``, ``message`` or ``name``), else its start."""
    try:
        payload = json.loads(body)
    except ValueError:
        payload = None
    if isinstance(payload, dict):
        for field in ("error_message", "message", "name", "error"):
            if isinstance(payload.get(field), str) and payload[field].strip():
                return str(payload[field]).strip()
    return body[:200].decode("utf-8", "replace").strip() or "no reason given"


def parse_results(payload: Any, expected: int) -> list[Any]:
    """The ``results`` list, one per target; any other count fails the whole request."""
    results = payload.get("results") if isinstance(payload, dict) else None
    if not isinstance(results, list):
        raise ProviderError("unexpected Moz answer: no 'results' list")
    if len(results) != expected:
        raise ProviderError(f"Moz answered {len(results)} results for {expected} targets")
    return results


def outcome(target: str, result: Any) -> Collected | ProviderError:
    """The target's signals from its result, or an error when the result is not about the target's host."""
    if not isinstance(result, dict):
        return ProviderError(f"unexpected Moz result for {target}: not an object", retryable=False)
    answered = result.get("subdomain")
    wanted = _host(target)
    if isinstance(answered, str) and wanted and _bare(answered) != _bare(wanted):
        return ProviderError(f"Moz's result names {answered}, not {wanted}: results out of order", retryable=False)
    return Collected(signals=signals_of(result), raw=result)


def signals_of(result: Mapping[str, Any]) -> dict[str, Any]:
    """Scores below Moz's scale (1-100) mean it has none; a negative spam score, that it computed none."""
    spam = _int(result.get("spam_score"))
    return {
        "moz.domain_authority": _score(result.get("domain_authority")),
        "moz.page_authority": _score(result.get("page_authority")),
        "moz.spam_score": spam if spam is not None and spam >= 0 else None,
        "moz.linking_root_domains": _count(result.get("root_domains_to_root_domain")),
        "moz.linking_pages": _count(result.get("external_pages_to_page")),
    }


def _host(target: str) -> str:
    return (urlsplit(target if "://" in target else "http://" + target).hostname or "").lower()


def _bare(host: str) -> str:
    host = host.strip().rstrip(".").lower()
    return host[4:] if host.startswith("www.") else host


def _int(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            return None
    if isinstance(value, int | float) and math.isfinite(value):
        return round(value)
    return None


def _score(value: object) -> int | None:
    score = _int(value)
    return min(score, 100) if score is not None and score >= 1 else None


def _count(value: object) -> int | None:
    count = _int(value)
    return count if count is not None and count >= 0 else None
