"""RDAP domain registration facts, with the registry found through the IANA bootstrap (RFC 9224)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from linkmeter.engine.provider import (
    CallContext,
    Collected,
    Policy,
    Provider,
    ProviderConfig,
    ProviderError,
    Signals,
    SignalSpec,
)
from linkmeter.engine.urls import registered_domain
from linkmeter.providers.timestamps import iso_utc

BOOTSTRAP_TTL = 24 * 3600.0
RDAP_JSON = "application/rdap+json"


@dataclass(frozen=True, slots=True)
class _Bootstrap:
    url: str
    fetched_at: float
    services: dict[str, list[str]]


class RdapProvider(Provider):
    """Fetches ``<base>/dns.json`` once per 24 h per instance (concurrent calls share one fetch), picks
    the registry by longest label match, then asks it for ``domain/<name>``. 404 means not registered."""

    name = "rdap"
    order = 30
    group = "domain"
    published_limits = "registries publish no numbers; linkmeter asks 3 per second"
    needs = ("domain",)
    wants = ("page.final_domain",)
    provides = {
        "rdap.registered": SignalSpec(bool, "the domain is registered"),
        "rdap.registration_date": SignalSpec(str, "registration date (ISO-8601 UTC)"),
        "rdap.domain_age_days": SignalSpec(int, "days since registration", "days", headline="Domain age (d)"),
        "rdap.expiration_date": SignalSpec(str, "expiration date (ISO-8601 UTC)"),
        "rdap.registrar": SignalSpec(str, "registrar name"),
        "rdap.registrar_iana_id": SignalSpec(str, "registrar IANA id"),
    }
    # Registries publish no numbers (UNVERIFIED); a few per second is polite. Registrations change rarely.
    policy = Policy(timeout=10.0, retries=2, rate_per_sec=3.0, burst=3, cache_ttl=86400.0)
    default_base_url = "https://data.iana.org/rdap"

    def __init__(
        self,
        config: ProviderConfig | None = None,
        *,
        now: Callable[[], datetime] | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(config)
        self._now = now or (lambda: datetime.now(UTC))
        self._monotonic = monotonic
        self._bootstrap: _Bootstrap | None = None
        self._bootstrap_lock = asyncio.Lock()

    def key(self, signals: Signals) -> str:
        name = str(signals.get("page.final_domain") or signals["domain"])
        return registered_domain(name.strip().rstrip(".").lower())

    async def collect(self, ctx: CallContext, signals: Signals) -> Collected:
        domain = self.key(signals)
        services = await self.services(ctx)
        base = select_service(services, domain)
        if base is None:
            tld = domain.rsplit(".", 1)[-1]
            raise ProviderError(f"no RDAP service for TLD {tld!r} in the IANA bootstrap", retryable=False)
        response = await ctx.http.request(
            "GET", join_url(base, f"domain/{domain}"), headers={"Accept": RDAP_JSON}, accept=(200, 404)
        )
        if response.status == 404:
            try:
                raw = response.json()
            except ProviderError:
                raw = None
            return Collected(signals=unregistered(), raw=raw)
        payload = response.json()
        return Collected(signals=parse_domain(payload, self._now()), raw=payload)

    async def services(self, ctx: CallContext) -> dict[str, list[str]]:
        """The bootstrap's TLD -> base URLs map, fetched at most once per TTL."""
        url = join_url(ctx.config.base_url, "dns.json")
        cached = self._cached(url)
        if cached is not None:
            return cached
        async with self._bootstrap_lock:
            cached = self._cached(url)
            if cached is not None:
                return cached
            response = await ctx.http.request("GET", url, headers={"Accept": "application/json"})
            services = parse_bootstrap(response.json())
            self._bootstrap = _Bootstrap(url, self._monotonic(), services)
            return services

    def _cached(self, url: str) -> dict[str, list[str]] | None:
        cached = self._bootstrap
        if cached is None or cached.url != url or self._monotonic() - cached.fetched_at >= BOOTSTRAP_TTL:
            return None
        return cached.services


def join_url(base: str, path: str) -> str:
    """``base`` + ``path`` whether or not the base ends with a slash."""
    return base.rstrip("/") + "/" + path.lstrip("/")


def parse_bootstrap(payload: Any) -> dict[str, list[str]]:
    """The ``services`` of an IANA bootstrap file as lower-case label -> base URLs."""
    services = payload.get("services") if isinstance(payload, dict) else None
    if not isinstance(services, list):
        raise ProviderError("unexpected RDAP bootstrap: no 'services' list")
    table: dict[str, list[str]] = {}
    for entry in services:
        if not (isinstance(entry, list) and len(entry) >= 2):
            continue
        labels, urls = entry[0], entry[1]
        if not (isinstance(labels, list) and isinstance(urls, list)):
            continue
        bases = [url for url in urls if isinstance(url, str) and url]
        for label in labels:
            if isinstance(label, str) and bases:
                table.setdefault(label.strip(".").lower(), bases)
    return table


def select_service(services: Mapping[str, list[str]], domain: str) -> str | None:
    """The base URL for ``domain``: the longest matching label suffix, an https URL when there is one."""
    labels = domain.strip(".").lower().split(".")
    for start in range(len(labels)):
        bases = services.get(".".join(labels[start:]))
        if bases:
            return next((url for url in bases if url.lower().startswith("https://")), bases[0])
    return None


def unregistered() -> dict[str, Any]:
    return {
        "rdap.registered": False,
        "rdap.registration_date": None,
        "rdap.domain_age_days": None,
        "rdap.expiration_date": None,
        "rdap.registrar": None,
        "rdap.registrar_iana_id": None,
    }


def parse_domain(payload: Any, now: datetime) -> dict[str, Any]:
    """The signals of an RDAP domain object; ``now`` (aware, UTC) dates the domain's age."""
    if not isinstance(payload, dict):
        raise ProviderError("unexpected RDAP response: not an object")
    registration = _event(payload, "registration")
    expiration = _event(payload, "expiration")
    registrar = _registrar(payload.get("entities"))
    return {
        "rdap.registered": True,
        "rdap.registration_date": _iso_or_none(registration),
        "rdap.domain_age_days": max(0, (now - registration).days) if registration else None,
        "rdap.expiration_date": _iso_or_none(expiration),
        "rdap.registrar": _vcard_fn(registrar) if registrar else None,
        "rdap.registrar_iana_id": _iana_id(registrar) if registrar else None,
    }


def parse_date(value: object) -> datetime | None:
    """An RDAP eventDate (RFC 3339) as an aware UTC datetime; None when unparseable."""
    if not isinstance(value, str):
        return None
    try:
        when = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.astimezone(UTC)


def _event(payload: Mapping[str, Any], action: str) -> datetime | None:
    events = payload.get("events")
    for event in events if isinstance(events, list) else ():
        if isinstance(event, dict) and str(event.get("eventAction", "")).lower() == action:
            when = parse_date(event.get("eventDate"))
            if when is not None:
                return when
    return None


def _registrar(entities: object) -> Mapping[str, Any] | None:
    """The first entity with the registrar role, searching nested entities too."""
    pending = list(entities) if isinstance(entities, list) else []
    while pending:
        entity = pending.pop(0)
        if not isinstance(entity, dict):
            continue
        roles = entity.get("roles")
        if isinstance(roles, list) and "registrar" in roles:
            return entity
        nested = entity.get("entities")
        if isinstance(nested, list):
            pending.extend(nested)
    return None


def _vcard_fn(entity: Mapping[str, Any]) -> str | None:
    vcard = entity.get("vcardArray")
    if not (isinstance(vcard, list) and len(vcard) >= 2 and isinstance(vcard[1], list)):
        return None
    for prop in vcard[1]:
        if isinstance(prop, list) and len(prop) >= 4 and prop[0] == "fn" and isinstance(prop[3], str):
            return prop[3].strip() or None
    return None


def _iana_id(entity: Mapping[str, Any]) -> str | None:
    public_ids = entity.get("publicIds")
    for item in public_ids if isinstance(public_ids, list) else ():
        if isinstance(item, dict) and "iana" in str(item.get("type", "")).lower():
            identifier = item.get("identifier")
            if identifier not in (None, ""):
                return str(identifier)
    return None


def _iso_or_none(when: datetime | None) -> str | None:
    return iso_utc(when) if when else None
