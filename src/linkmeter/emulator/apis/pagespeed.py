"""Emulated PageSpeed Insights v5: Lighthouse lab metrics scored as Lighthouse does, CrUX field data for
popular sites only, Google's error envelopes, and a run that takes seconds."""

from __future__ import annotations

import asyncio
import math
from datetime import timedelta
from typing import Any

from aiohttp import web

from linkmeter.emulator.apis import KNOBS, WORLD, Sample
from linkmeter.emulator.world import EPOCH, World, url_host
from linkmeter.engine.urls import InvalidURL, normalise_url

NAME = "pagespeed"
DEMO_KEY = "AIzaSyLinkmeterEmulatorDemoKey000000000"
PATH = "/pagespeedonline/v5/runPagespeed"
# A real run takes 10-40 s; the emulator's take ANALYSIS_SECONDS x DELAY_SCALE (drawn per URL), on top of the
# knobs' latency, so the demo feels it. Tests set DELAY_SCALE to 0; the benchmark sets the knobs' slow_scale to 0.
ANALYSIS_SECONDS = (2.0, 5.0)
DELAY_SCALE = 1.0
FIELD_POPULARITY = 0.25  # below it CrUX has no data for the site: no loadingExperience at all
URL_FIELD_POPULARITY = 0.6  # below it the page's own data is too thin: the origin's, with origin_fallback
SHARED_PROJECT = "583797351490"  # what Google bills calls without a key to (REFERENCE §10)
LIGHTHOUSE_VERSION = "12.6.0"
# Lighthouse 10+ metric scoring (mobile and desktop): audit -> (p10, median, weight).
SCORING = {
    "mobile": {"first-contentful-paint": (1800, 3000, 0.10), "speed-index": (3387, 5800, 0.10),
               "largest-contentful-paint": (2500, 4000, 0.25), "total-blocking-time": (200, 600, 0.30),
               "cumulative-layout-shift": (0.1, 0.25, 0.25)},
    "desktop": {"first-contentful-paint": (934, 1600, 0.10), "speed-index": (1311, 2300, 0.10),
                "largest-contentful-paint": (1200, 2400, 0.25), "total-blocking-time": (150, 350, 0.30),
                "cumulative-layout-shift": (0.1, 0.25, 0.25)},
}
TITLES = {"first-contentful-paint": ("First Contentful Paint", "FCP"), "speed-index": ("Speed Index", "SI"),
          "largest-contentful-paint": ("Largest Contentful Paint", "LCP"),
          "total-blocking-time": ("Total Blocking Time", "TBT"),
          "cumulative-layout-shift": ("Cumulative Layout Shift", "CLS"),
          "server-response-time": ("Initial server response time was short", "")}
# CrUX thresholds (good, poor) per field metric.
FIELD_THRESHOLDS = {"LARGEST_CONTENTFUL_PAINT_MS": (2500, 4000), "INTERACTION_TO_NEXT_PAINT": (200, 500),
                    "CUMULATIVE_LAYOUT_SHIFT_SCORE": (10, 25), "FIRST_CONTENTFUL_PAINT_MS": (1800, 3000),
                    "EXPERIMENTAL_TIME_TO_FIRST_BYTE": (800, 1800)}
CORE_VITALS = ("LARGEST_CONTENTFUL_PAINT_MS", "INTERACTION_TO_NEXT_PAINT", "CUMULATIVE_LAYOUT_SHIFT_SCORE")
Z_P10 = 1.2815515655446004  # the standard normal quantile of 0.9

routes = web.RouteTableDef()


@routes.get(PATH)
async def run_pagespeed(request: web.Request) -> web.Response:
    key = request.query.get("key") or request.headers.get("X-Goog-Api-Key", "")
    if not key:
        return google_error(429, f"Quota exceeded for quota metric 'Queries' and limit 'Queries per day' of "
                                 f"service 'pagespeedonline.googleapis.com' for consumer 'project_number:"
                                 f"{SHARED_PROJECT}'.", "RESOURCE_EXHAUSTED", "rateLimitExceeded")
    if key != DEMO_KEY:
        return bad_key()
    url = request.query.get("url", "")
    if not url:
        return google_error(400, "Required parameter: url", "INVALID_ARGUMENT", "required")
    strategy = request.query.get("strategy", "desktop").lower()  # the documented default is desktop
    if strategy not in SCORING:
        return google_error(400, f"Invalid value at 'strategy' (type.googleapis.com/google.chrome.lighthouse.v1"
                                 f".Strategy), \"{strategy}\"", "INVALID_ARGUMENT", "badRequest")
    try:
        target = normalise_url(url)
    except InvalidURL:
        return google_error(400, f"Invalid value '{url}' for url", "INVALID_ARGUMENT", "badRequest")
    world = request.app[WORLD]
    delay = analysis_seconds(world, target, strategy) * request.app[KNOBS].slow_scale
    if delay > 0:
        await asyncio.sleep(delay)
    if not world.domain(url_host(target)).registered:
        return google_error(400, "Lighthouse returned error: DNS_FAILURE. DNS servers could not resolve the "
                                 "provided domain.", None, "lighthouseUserError", domain="lighthouse")
    return web.json_response(result(world, target, strategy, request.query.getall("category", ["performance"])))


def analysis_seconds(world: World, url: str, strategy: str) -> float:
    """How long the emulated run of ``url`` takes (before the knobs' latency)."""
    return DELAY_SCALE * world.rng("pagespeed-delay", url, strategy).uniform(*ANALYSIS_SECONDS)


def rate_limited_response(retry_after: float) -> web.Response:
    """Google's 429 envelope (REFERENCE §10; PSI sends no Retry-After)."""
    return google_error(429, "Quota exceeded for quota group 'default' and limit 'Queries per 100 seconds' of "
                             "service 'pagespeedonline.googleapis.com' for consumer 'project_number:"
                             "102440201183'.", "RESOURCE_EXHAUSTED", "rateLimitExceeded")


def error_response(status: int) -> web.Response:
    if status == 500:
        return google_error(500, "Unable to process request. Please wait a while and try again.", "INTERNAL",
                            "internalError")
    return google_error(status, "The service is currently unavailable.", "UNAVAILABLE", "backendError")


def bad_key() -> web.Response:
    """Google's answer to a key it does not know."""
    body: dict[str, Any] = {"error": {
        "code": 400, "message": "API key not valid. Please pass a valid API key.",
        "errors": [{"message": "API key not valid. Please pass a valid API key.", "domain": "global",
                    "reason": "badRequest"}],
        "status": "INVALID_ARGUMENT",
        "details": [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID",
                     "domain": "googleapis.com", "metadata": {"service": "pagespeedonline.googleapis.com"}}]}}
    return web.json_response(body, status=400)


def google_error(code: int, message: str, status: str | None, reason: str, *, domain: str = "global"
                 ) -> web.Response:
    """The standard Google API error envelope."""
    error: dict[str, Any] = {"code": code, "message": message,
                             "errors": [{"message": message, "domain": domain, "reason": reason}]}
    if status:
        error["status"] = status
    return web.json_response({"error": error}, status=code)


def lab_metrics(world: World, url: str, strategy: str) -> dict[str, float]:
    """Lab values of ``url``: a per-site speed shared by its pages, spam slower and jumpier, desktop faster."""
    host = url_host(url)
    facts = world.domain(host)
    site = world.rng("pagespeed-site", facts.domain)
    page = world.rng("pagespeed", url, strategy)
    slow = math.exp(site.gauss(0.0, 0.35)) * (1.6 if facts.spam else 1.0) * math.exp(page.gauss(0.0, 0.15))
    device = 1.0 if strategy == "mobile" else 0.4
    fcp = 2200 * slow * device
    lcp = max(fcp, 3500 * slow * device * page.uniform(0.9, 1.2))
    return {
        "first-contentful-paint": fcp,
        "largest-contentful-paint": lcp,
        "speed-index": max(fcp, 4200 * slow * device * page.uniform(0.85, 1.15)),
        "total-blocking-time": 450 * slow ** 1.5 * (1.0 if strategy == "mobile" else 0.3) * page.uniform(0.5, 1.5),
        "cumulative-layout-shift": round(site.choice((0.0, 0.002, 0.03, 0.08, 0.15, 0.3)) * (2 if facts.spam else 1)
                                         * page.uniform(0.8, 1.2), 4),
        "server-response-time": 120 + 500 * slow * page.uniform(0.5, 1.5),
    }


def metric_score(value: float, p10: float, median: float) -> float:
    """Lighthouse's log-normal score: 0.9 at p10, 0.5 at the median."""
    if value <= 0:
        return 1.0
    sigma = (math.log(median) - math.log(p10)) / Z_P10
    return 0.5 * math.erfc((math.log(value) - math.log(median)) / (math.sqrt(2) * sigma))


def result(world: World, url: str, strategy: str, categories: list[str]) -> dict[str, Any]:
    """A runPagespeed answer (the parts clients read, in the real structure)."""
    final = "https://" + url.split("://", 1)[1]  # the synthetic web redirects plain http
    lab = lab_metrics(world, url, strategy)
    audits = {audit: _audit(audit, value, strategy) for audit, value in lab.items()}
    weights = SCORING[strategy]
    score = sum(audits[a]["score"] * w for a, (_, _, w) in weights.items()) / sum(w for *_, w in weights.values())
    categories_out: dict[str, Any] = {"performance": {
        "id": "performance", "title": "Performance", "score": round(score, 2),
        "auditRefs": [{"id": a, "weight": round(w * 100), "group": "metrics", "acronym": TITLES[a][1]}
                      for a, (_, _, w) in weights.items()]}}
    rng = world.rng("pagespeed-categories", url, strategy)
    for name in categories:
        if name.lower() in ("accessibility", "best-practices", "seo"):
            key = name.lower()
            categories_out[key] = {"id": key, "title": key.replace("-", " ").title(),
                                   "score": round(rng.uniform(0.6, 1.0), 2)}
    fetched = EPOCH + timedelta(seconds=world.rng("pagespeed-time", url).randint(0, 86399))
    answer: dict[str, Any] = {
        "captchaResult": "CAPTCHA_NOT_NEEDED",
        "kind": "pagespeedonline#result",
        "id": final,
    }
    facts = world.domain(url_host(url))
    if facts.popularity >= FIELD_POPULARITY:
        origin = final.split("/", 3)
        origin_url = "/".join(origin[:3])
        by_url = facts.popularity >= URL_FIELD_POPULARITY
        answer["loadingExperience"] = _experience(world, final if by_url else origin_url, lab, strategy,
                                                  fallback=not by_url, initial=url)
        answer["originLoadingExperience"] = _experience(world, origin_url, lab, strategy, fallback=False,
                                                        initial=url)
    answer["lighthouseResult"] = {
        "requestedUrl": url, "finalUrl": final, "mainDocumentUrl": final, "finalDisplayedUrl": final,
        "lighthouseVersion": LIGHTHOUSE_VERSION,
        "userAgent": "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/"
                     "137.0.0.0 Safari/537.36",
        "fetchTime": fetched.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z",
        "environment": {"networkUserAgent": "Mozilla/5.0 (Linux; Android 11; moto g power (2022)) "
                                            "AppleWebKit/537.36 (KHTML, like Gecko) Chrome/137.0.0.0 Mobile "
                                            "Safari/537.36 Chrome-Lighthouse", "benchmarkIndex": 2500},
        "runWarnings": [],
        "configSettings": {"emulatedFormFactor": strategy, "formFactor": strategy, "locale": "en-US",
                           "onlyCategories": sorted(categories_out), "channel": "lr"},
        "audits": audits,
        "categories": categories_out,
        "timing": {"total": round(world.rng("pagespeed-delay", url, strategy).uniform(8000, 30000), 1)},
    }
    answer["analysisUTCTimestamp"] = fetched.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    return answer


def _audit(audit: str, value: float, strategy: str) -> dict[str, Any]:
    title, _ = TITLES[audit]
    if audit == "server-response-time":
        return {"id": audit, "title": title, "score": 1 if value < 600 else 0, "scoreDisplayMode": "metricSavings",
                "numericValue": round(value), "numericUnit": "millisecond",
                "displayValue": f"Root document took {round(value):,} ms"}
    p10, median, _ = SCORING[strategy][audit]
    score = round(metric_score(value, p10, median), 2)
    if audit == "cumulative-layout-shift":
        shown, unit = f"{value:.3f}", "unitless"
    elif audit == "total-blocking-time":
        shown, unit = f"{round(value / 10) * 10:,} ms", "millisecond"
    else:
        shown, unit = f"{value / 1000:.1f}\u00a0s", "millisecond"
    return {"id": audit, "title": title, "score": score, "scoreDisplayMode": "numeric",
            "numericValue": round(value, 4) if unit == "unitless" else round(value, 1),
            "numericUnit": unit, "displayValue": shown}


def _experience(world: World, key: str, lab: dict[str, float], strategy: str, *, fallback: bool,
                initial: str) -> dict[str, Any]:
    """CrUX p75 values near the lab ones (real users' devices beat Lighthouse's throttled phone)."""
    rng = world.rng("pagespeed-field", key, strategy)
    values = {
        "LARGEST_CONTENTFUL_PAINT_MS": lab["largest-contentful-paint"] * rng.uniform(0.55, 0.95),
        "INTERACTION_TO_NEXT_PAINT": 60 + lab["total-blocking-time"] * rng.uniform(0.2, 0.7),
        "CUMULATIVE_LAYOUT_SHIFT_SCORE": lab["cumulative-layout-shift"] * 100 * rng.uniform(0.5, 1.4),
        "FIRST_CONTENTFUL_PAINT_MS": lab["first-contentful-paint"] * rng.uniform(0.5, 0.9),
        "EXPERIMENTAL_TIME_TO_FIRST_BYTE": lab["server-response-time"] * rng.uniform(0.8, 1.6),
    }
    metrics = {name: _field_metric(name, round(value), rng.random()) for name, value in values.items()}
    order = ("FAST", "AVERAGE", "SLOW")
    overall = max((metrics[name]["category"] for name in CORE_VITALS), key=order.index)
    experience: dict[str, Any] = {"id": key, "metrics": metrics, "overall_category": overall,
                                  "initial_url": initial}
    if fallback:
        experience["origin_fallback"] = True
    return experience


def _field_metric(name: str, percentile: int, draw: float) -> dict[str, Any]:
    good, poor = FIELD_THRESHOLDS[name]
    category = "FAST" if percentile <= good else "AVERAGE" if percentile <= poor else "SLOW"
    fast = {"FAST": 0.76 + 0.2 * draw, "AVERAGE": 0.45 + 0.29 * draw, "SLOW": 0.2 + 0.3 * draw}[category]
    slow = (1 - fast) * (0.3 + 0.5 * draw) if category != "FAST" else (1 - fast) * 0.3
    if name == "CUMULATIVE_LAYOUT_SHIFT_SCORE":
        bounds = [{"min": 0, "max": 10}, {"min": 10, "max": 25}, {"min": 25}]
    else:
        bounds = [{"min": 0, "max": good}, {"min": good, "max": poor}, {"min": poor}]
    shares = (round(fast, 4), round(1 - fast - slow, 4), round(slow, 4))
    return {"percentile": percentile, "category": category,
            "distributions": [{**bound, "proportion": share} for bound, share in zip(bounds, shares, strict=True)]}


def sample(world: World) -> Sample:
    """A request this API answers from its World (the same-seed test)."""
    return Sample("/pagespeedonline/v5/runPagespeed?url=https://www.site2.com/a/2&strategy=mobile",
                  headers={"X-Goog-Api-Key": DEMO_KEY})
