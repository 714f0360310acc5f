"""Emulated Google Safe Browsing v4 Lookup API: threatMatches:find and the Google error envelope."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from linkmeter.emulator.apis import WORLD, Sample
from linkmeter.emulator.apis._threats import CLEAN, held
from linkmeter.emulator.world import World, url_host

NAME = "safebrowsing"
DEMO_KEY = "AIzaSy-linkmeter-emulator-demo-key-00000"
# A well-formed key whose project has not enabled the API: 403 PERMISSION_DENIED (SERVICE_DISABLED).
DISABLED_KEY = "AIzaSy-linkmeter-emulator-api-disabled-0"
MAX_ENTRIES = 500
THREAT_TYPES = ("MALWARE", "SOCIAL_ENGINEERING", "UNWANTED_SOFTWARE", "POTENTIALLY_HARMFUL_APPLICATION",
                "THREAT_TYPE_UNSPECIFIED")
PLATFORM_TYPES = ("PLATFORM_TYPE_UNSPECIFIED", "WINDOWS", "LINUX", "ANDROID", "OSX", "IOS", "ANY_PLATFORM",
                  "ALL_PLATFORMS", "CHROME")
ENTRY_TYPES = ("THREAT_ENTRY_TYPE_UNSPECIFIED", "URL", "EXECUTABLE")
# Of each kind of domain, the share Safe Browsing lists: most phishing and malware, some spam.
SHARES = {"phishing": 0.8, "malware": 0.75, "spam": 0.2, CLEAN: 0.001}
CACHE_DURATIONS = ("300s", "300.000s", "600s", "1800s")
SERVICE = "safebrowsing.googleapis.com"
PROJECT = "project_number:583797351490"

routes = web.RouteTableDef()


@routes.post("/v4/threatMatches:find")
async def find(request: web.Request) -> web.Response:
    refused = _check_key(request.query.get("key", ""))
    if refused is not None:
        return refused
    try:
        body = json.loads(await request.read())
    except ValueError as exc:
        return google_error(400, "INVALID_ARGUMENT", f"Invalid JSON payload received. {exc}.")
    problem = _invalid(body)
    if problem is not None:
        return problem
    info = body["threatInfo"]
    urls = [entry["url"] for entry in info.get("threatEntries", []) if isinstance(entry.get("url"), str)]
    matches = find_matches(request.app[WORLD], urls, info.get("threatTypes", []), info.get("platformTypes", []),
                           info.get("threatEntryTypes", []))
    if matches:
        return web.json_response({"matches": matches})
    # The real API answers {}; some front ends and mocks send an empty list: clients meet both.
    empty_list = request.app[WORLD].rng(NAME, "clean", tuple(urls)).random() < 0.5
    return web.json_response({"matches": []} if empty_list else {})


def rate_limited_response(retry_after: float) -> web.Response:
    """Google's quota answer (no Retry-After: Google sends none)."""
    message = (f"Quota exceeded for quota metric 'Queries' and limit 'Queries per minute' of service "
               f"'{SERVICE}' for consumer '{PROJECT}'.")
    return google_error(429, "RESOURCE_EXHAUSTED", message, reason="rateLimitExceeded")


def error_response(status: int) -> web.Response:
    if status == 503:
        return google_error(503, "UNAVAILABLE", "The service is currently unavailable.")
    return google_error(500, "INTERNAL", "Internal error encountered.")


def google_error(code: int, status: str, message: str, *, reason: str | None = None,
                 details: list[dict[str, Any]] | None = None) -> web.Response:
    """The Google API error envelope."""
    error: dict[str, Any] = {"code": code, "message": message, "status": status}
    if reason is not None:
        error["errors"] = [{"message": message, "domain": "global", "reason": reason}]
    if details is not None:
        error["details"] = details
    return web.json_response({"error": error}, status=code)


def threat_types(world: World, host: str) -> list[str]:
    """The lists Safe Browsing holds ``host``'s domain on (none for most domains)."""
    facts = held(world, NAME, host, SHARES) if host else None
    if facts is None:
        return []
    if facts.threat == "phishing":
        return ["SOCIAL_ENGINEERING"]
    if facts.threat == "spam":
        return ["UNWANTED_SOFTWARE"]
    rng = world.rng(NAME, "types", facts.domain)
    found = ["MALWARE"]  # malware, and the clean sites compromised to serve it
    if rng.random() < 0.3:
        found.append("UNWANTED_SOFTWARE")
    if rng.random() < 0.1:
        found.append("POTENTIALLY_HARMFUL_APPLICATION")
    return found


def find_matches(world: World, urls: list[str], types: list[str], platforms: list[str],
                 entry_types: list[str]) -> list[dict[str, Any]]:
    """One ThreatMatch per (URL, listed threat type asked for), in request order."""
    if "URL" not in entry_types or not platforms:
        return []
    platform = platforms[0]
    matches = []
    for url in dict.fromkeys(urls):
        for threat in threat_types(world, url_host(url)):
            if threat not in types:
                continue
            rng = world.rng(NAME, "match", url, threat)
            match: dict[str, Any] = {"threatType": threat, "platformType": platform, "threatEntryType": "URL",
                                     "threat": {"url": url}}
            if threat == "MALWARE":
                kind = rng.choice(("landing", "distribution"))
                match["threatEntryMetadata"] = {"entries": [{"key": "malware_threat_type", "value": kind}]}
            match["cacheDuration"] = rng.choice(CACHE_DURATIONS)
            matches.append(match)
    return matches


def _check_key(key: str) -> web.Response | None:
    if not key:
        return google_error(403, "PERMISSION_DENIED",
                            "Method doesn't allow unregistered callers (callers without established identity). "
                            "Please use API Key or other form of API consumer identity to call this API.")
    if key == DISABLED_KEY:
        return google_error(
            403, "PERMISSION_DENIED",
            "Safe Browsing API has not been used in project 583797351490 before or it is disabled.",
            details=[{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "SERVICE_DISABLED",
                      "domain": "googleapis.com", "metadata": {"service": SERVICE}}])
    if key != DEMO_KEY:
        return google_error(
            400, "INVALID_ARGUMENT", "API key not valid. Please pass a valid API key.",
            details=[{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID",
                      "domain": "googleapis.com", "metadata": {"service": SERVICE}}])
    return None


def _invalid(body: Any) -> web.Response | None:
    """A 400 for a body the real API refuses: not a FindThreatMatchesRequest, an unknown enum, > 500 entries."""
    if not isinstance(body, dict) or not isinstance(body.get("threatInfo", {}), dict):
        return google_error(400, "INVALID_ARGUMENT", "Invalid JSON payload received. Expected an object.")
    info = body.get("threatInfo", {})
    for field, allowed, enum in (("threatTypes", THREAT_TYPES, "ThreatType"),
                                 ("platformTypes", PLATFORM_TYPES, "PlatformType"),
                                 ("threatEntryTypes", ENTRY_TYPES, "ThreatEntryType")):
        values = info.get(field, [])
        if not isinstance(values, list):
            return _field_error(f"threat_info.{_snake(field)}", "Starting an object on a scalar field")
        for index, value in enumerate(values):
            if value not in allowed:
                return _field_error(f"threat_info.{_snake(field)}[{index}]",
                                    f"(type.googleapis.com/google.safebrowsing.v4.{enum}), {json.dumps(value)}")
    entries = info.get("threatEntries", [])
    if not isinstance(entries, list) or not all(isinstance(entry, dict) for entry in entries):
        return _field_error("threat_info.threat_entries", "Starting an object on a scalar field")
    if len(entries) > MAX_ENTRIES:
        return google_error(400, "INVALID_ARGUMENT", "Request contains an invalid argument.", details=[{
            "@type": "type.googleapis.com/google.rpc.BadRequest",
            "fieldViolations": [{"field": "threat_info.threat_entries",
                                 "description": f"At most {MAX_ENTRIES} threat entries per request."}]}])
    return None


def _field_error(field: str, detail: str) -> web.Response:
    message = f"Invalid value at '{field}' {detail}"
    return google_error(400, "INVALID_ARGUMENT", f"Invalid JSON payload received. {message}", details=[{
        "@type": "type.googleapis.com/google.rpc.BadRequest",
        "fieldViolations": [{"field": field, "description": message}]}])


def _snake(name: str) -> str:
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in name)


def sample(world: World) -> Sample:
    """A request this API answers from its World (the same-seed test)."""
    return Sample(f"/v4/threatMatches:find?key={DEMO_KEY}", "POST", json={
        "client": {"clientId": "linkmeter", "clientVersion": "0"},
        "threatInfo": {"threatTypes": ["MALWARE", "SOCIAL_ENGINEERING"], "platformTypes": ["ANY_PLATFORM"],
                       "threatEntryTypes": ["URL"],
                       "threatEntries": [{"url": "https://phish-login.example/"}, {"url": "https://site3.com/"}]}})
