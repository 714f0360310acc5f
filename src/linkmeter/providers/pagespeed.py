"""Google PageSpeed Insights v5: Lighthouse lab metrics and CrUX field metrics of a URL (slow, small quota)."""

from __future__ import annotations

import math
from typing import Any
from urllib.parse import quote, quote_plus

from linkmeter.engine.http import HttpResponse, parse_retry_after
from linkmeter.engine.provider import (
    CallContext,
    Collected,
    Policy,
    Provider,
    ProviderError,
    Signals,
    SignalSpec,
)

ENDPOINT = "/pagespeedonline/v5/runPagespeed"
STRATEGIES = ("mobile", "desktop")
DEFAULT_STRATEGY = "mobile"
KEY_VARIABLE = "LINKMETER_PAGESPEED_API_KEY"
# Lab metrics: signal -> Lighthouse audit id.
LAB_AUDITS = {
    "lcp_ms": "largest-contentful-paint",
    "fcp_ms": "first-contentful-paint",
    "tbt_ms": "total-blocking-time",
    "si_ms": "speed-index",
    "server_response_ms": "server-response-time",
}
# Field metrics: signal prefix -> CrUX metric key.
FIELD_METRICS = {
    "field_lcp": "LARGEST_CONTENTFUL_PAINT_MS",
    "field_inp": "INTERACTION_TO_NEXT_PAINT",
    "field_cls": "CUMULATIVE_LAYOUT_SHIFT_SCORE",
}

FIELD_SIGNALS = tuple(f"pagespeed.{name}" for name in (
    "field_scope", "field_lcp_ms", "field_lcp_category", "field_inp_ms", "field_inp_category", "field_cls",
    "field_cls_category", "field_category"))


class PageSpeedProvider(Provider):
    """One ``runPagespeed`` request (category performance, the strategy of
    ``LINKMETER_PAGESPEED_OPT_STRATEGY``, default mobile). The key travels in the ``X-Goog-Api-Key`` header,
    which every Google API accepts as well as ``?key=``, so it is in no URL; error messages mask it anyway.
    Field data (CrUX) exists only for pages with enough traffic: without ``loadingExperience`` the field
    signals are None."""

    name = "pagespeed"
    order = 15
    group = "page"
    in_default_set = False  # tens of seconds per URL and a small quota: only when a submission asks for it
    requires_key = True
    key_url = "https://developers.google.com/speed/docs/insights/v5/get-started#APIKey"
    published_limits = "25,000 queries a day and 400 per 100 seconds per project (UNVERIFIED)"
    needs = ("url",)
    provides = {
        "pagespeed.performance": SignalSpec(int, "Lighthouse performance score (0-100)", "points",
                                            headline="PSI perf"),
        "pagespeed.strategy": SignalSpec(str, "the device the page was tested as (mobile or desktop)"),
        "pagespeed.lcp_ms": SignalSpec(int, "lab Largest Contentful Paint", "ms"),
        "pagespeed.cls": SignalSpec(float, "lab Cumulative Layout Shift"),
        "pagespeed.tbt_ms": SignalSpec(int, "lab Total Blocking Time", "ms"),
        "pagespeed.fcp_ms": SignalSpec(int, "lab First Contentful Paint", "ms"),
        "pagespeed.si_ms": SignalSpec(int, "lab Speed Index", "ms"),
        "pagespeed.server_response_ms": SignalSpec(int, "lab server response time of the main document", "ms"),
        "pagespeed.field_scope": SignalSpec(str, "what the field data describes: url, or origin when the page "
                                                 "has too little traffic of its own (None: no field data)"),
        "pagespeed.field_lcp_ms": SignalSpec(int, "field (CrUX) p75 Largest Contentful Paint", "ms"),
        "pagespeed.field_lcp_category": SignalSpec(str, "FAST, AVERAGE or SLOW"),
        "pagespeed.field_inp_ms": SignalSpec(int, "field (CrUX) p75 Interaction to Next Paint", "ms"),
        "pagespeed.field_inp_category": SignalSpec(str, "FAST, AVERAGE or SLOW"),
        "pagespeed.field_cls": SignalSpec(float, "field (CrUX) p75 Cumulative Layout Shift"),
        "pagespeed.field_cls_category": SignalSpec(str, "FAST, AVERAGE or SLOW"),
        "pagespeed.field_category": SignalSpec(str, "overall field category (FAST, AVERAGE or SLOW)"),
    }
    # A run takes 10-40 s (Lighthouse loads the page in Google's data centre). The quota is 400 queries per
    # 100 s (UNVERIFIED): 4/s. Many concurrent runs on one origin give 500 "Unable to process request"
    # (UNVERIFIED, bjb.dev 2022): few in flight. Lab numbers vary run to run anyway: a day's cache.
    policy = Policy(timeout=60.0, retries=1, backoff_base=2.0, rate_per_sec=4.0, burst=4, concurrency=8,
                    cache_ttl=86400.0)
    default_base_url = "https://www.googleapis.com"

    def disabled_reason(self) -> str | None:
        reason = super().disabled_reason()
        if reason is None and strategy(self.config.extra) is None:
            return (f"LINKMETER_PAGESPEED_OPT_STRATEGY must be one of {', '.join(STRATEGIES)}, "
                    f"not {self.config.extra.get('strategy')!r}")
        return reason

    def key(self, signals: Signals) -> str:
        return f"{strategy(self.config.extra) or DEFAULT_STRATEGY} {signals['url']}"

    async def collect(self, ctx: CallContext, signals: Signals) -> Collected:
        secret = ctx.config.api_key or ""
        chosen = strategy(ctx.config.extra) or DEFAULT_STRATEGY
        try:
            response = await ctx.http.request(
                "GET", ctx.config.base_url.rstrip("/") + ENDPOINT,
                params=[("url", str(signals["url"])), ("strategy", chosen), ("category", "performance")],
                headers={"X-Goog-Api-Key": secret, "Accept": "application/json"}, accept=range(200, 600),
            )
        except ProviderError as exc:
            exc.message = masked(exc.message, secret)
            exc.args = (exc.message,)
            raise
        if response.status != 200:
            raise google_error(response, secret)
        payload = response.json()
        return Collected(signals=parse_result(payload, chosen), raw=payload)


def strategy(extra: dict[str, str]) -> str | None:
    """The configured strategy (default mobile); None when the option names another."""
    value = extra.get("strategy", "").strip().lower() or DEFAULT_STRATEGY
    return value if value in STRATEGIES else None


def masked(text: str, secret: str) -> str:
    """``text`` without the key, in any of the spellings a URL or a message may carry it."""
    if not secret:
        return text
    for form in {secret, quote(secret, safe=""), quote_plus(secret)}:
        text = text.replace(form, "<key>")
    return text


def google_error(response: HttpResponse, secret: str) -> ProviderError:
    """A Google error envelope as the call's failure; the message names the key's variable when the key is
    at fault and never shows the key itself."""
    status = response.status
    error = _envelope(response)
    message = masked(str(error.get("message") or response.text()[:200] or f"HTTP {status}"), secret)
    reasons = {str(item.get("reason", "")) for item in error.get("errors", []) if isinstance(item, dict)}
    reasons |= {str(item.get("reason", "")) for item in error.get("details", []) if isinstance(item, dict)}
    where = f"PageSpeed Insights HTTP {status}"
    if status == 429 or error.get("status") == "RESOURCE_EXHAUSTED":
        return ProviderError(f"{where} rate limited: {message}", retryable=True, rate_limited=True, status=status,
                             retry_after=parse_retry_after(response.headers.get("Retry-After")))
    if message.startswith("Lighthouse returned error"):
        # The page itself failed to load in Lighthouse (DNS, TLS, an error status): not worth a retry.
        return ProviderError(f"{where}: {message}", retryable=False, status=status)
    if "API_KEY_INVALID" in reasons or "API key not valid" in message or status in (401, 403):
        return ProviderError(f"{where}: {message} (check {KEY_VARIABLE})", retryable=False, status=status)
    return ProviderError(f"{where}: {message}", retryable=status >= 500, status=status)


def parse_result(payload: Any, chosen: str) -> dict[str, Any]:
    """The signals of a runPagespeed answer: lab values from ``lighthouseResult``, field values from
    ``loadingExperience`` (None without it)."""
    if not isinstance(payload, dict) or not isinstance(payload.get("lighthouseResult"), dict):
        raise ProviderError("unexpected PageSpeed Insights response: no lighthouseResult")
    lighthouse = payload["lighthouseResult"]
    audits = _object(lighthouse.get("audits"))
    score = _number(_object(_object(lighthouse.get("categories")).get("performance")).get("score"))
    found: dict[str, Any] = {
        "pagespeed.performance": round(score * 100) if score is not None else None,
        "pagespeed.strategy": chosen,
    }
    for signal, audit in LAB_AUDITS.items():
        value = _number(_get(audits, audit, "numericValue"))
        found[f"pagespeed.{signal}"] = round(value) if value is not None else None
    cls = _number(_get(audits, "cumulative-layout-shift", "numericValue"))
    found["pagespeed.cls"] = round(cls, 4) if cls is not None else None
    found.update(parse_field(payload.get("loadingExperience")))
    return found


def parse_field(experience: Any) -> dict[str, Any]:
    """CrUX p75 values and categories; every field signal None when the page has no field data."""
    if not isinstance(experience, dict) or not isinstance(experience.get("metrics"), dict) \
            or not experience["metrics"]:
        return dict.fromkeys(FIELD_SIGNALS)
    metrics = experience["metrics"]
    found: dict[str, Any] = {
        "pagespeed.field_scope": "origin" if experience.get("origin_fallback") else "url",
        "pagespeed.field_category": _category(experience.get("overall_category")),
    }
    for prefix, key in FIELD_METRICS.items():
        metric = _object(metrics.get(key))
        percentile = _number(metric.get("percentile"))
        if prefix == "field_cls":
            # CrUX reports CLS x 100 as an integer percentile.
            found["pagespeed.field_cls"] = round(percentile / 100, 2) if percentile is not None else None
        else:
            found[f"pagespeed.{prefix}_ms"] = round(percentile) if percentile is not None else None
        found[f"pagespeed.{prefix}_category"] = _category(metric.get("category"))
    return found


def _envelope(response: HttpResponse) -> dict[str, Any]:
    try:
        body = response.json()
    except ProviderError:
        return {}
    error = body.get("error") if isinstance(body, dict) else None
    return error if isinstance(error, dict) else {}


def _object(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _get(audits: dict[str, Any], audit: str, field: str) -> Any:
    entry = audits.get(audit)
    return entry.get(field) if isinstance(entry, dict) else None


def _number(value: object) -> float | None:
    """A finite JSON number, or one in a string; None for anything else."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def _category(value: object) -> str | None:
    return value.upper() if isinstance(value, str) and value.upper() in ("FAST", "AVERAGE", "SLOW") else None
