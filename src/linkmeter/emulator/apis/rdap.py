"""Emulated RDAP: an IANA-style dns.json bootstrap and registries answering in Verisign's domain shape."""

from __future__ import annotations

import functools
import json
import math
import re
from datetime import datetime
from pathlib import Path
from typing import Any

from aiohttp import web
from publicsuffixlist import PSLFILE

from linkmeter.emulator import answers
from linkmeter.emulator.apis import WORLD, Sample
from linkmeter.emulator.world import EPOCH, DomainFacts, World
from linkmeter.engine.urls import registered_domain

NAME = "rdap"
RDAP_JSON = "application/rdap+json"
BOOTSTRAP_PATH = "/dns.json"
# (registry id, the labels it serves, whether its base URL ends with "/"): the missing slashes exercise
# clients' URL joins, and "co.uk" exercises RFC 9224's longest label match (the IANA file has none).
REGISTRIES: tuple[tuple[str, tuple[str, ...], bool], ...] = (
    ("com", ("com", "net"), True),
    ("org", ("org",), False),
    ("io", ("io",), True),
    ("de", ("de",), False),
    ("uk", ("uk",), True),
    ("co.uk", ("co.uk",), False),
    ("reserved", ("example", "test", "invalid", "localhost"), True),
)
# Every other ICANN TLD of the public suffix list is served by this one, so any synthetic domain resolves.
CATCH_ALL = "misc"
LABEL = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
CONFORMANCE = ["rdap_level_0", "icann_rdap_technical_implementation_guide_0", "icann_rdap_response_profile_0"]
TERMS_URL = "https://www.verisign.com/domain-names/registration-data-access-protocol/terms-service/index.xhtml"
STATUS_SETS = (
    ["client delete prohibited", "client transfer prohibited", "client update prohibited"],
    ["client transfer prohibited"],
    ["active"],
    ["client delete prohibited", "client transfer prohibited", "server update prohibited"],
)


routes = web.RouteTableDef()


@routes.get(BOOTSTRAP_PATH)
async def bootstrap(request: web.Request) -> web.Response:
    return web.json_response(bootstrap_document(_service_root(request)))


@routes.get("/registry/{registry}/domain/{name}")
async def domain(request: web.Request) -> web.Response:
    return _domain(request.app[WORLD], request)


def rate_limited_response(retry_after: float) -> web.Response:
    return _error(429, "Too Many Requests", "Query rate limit exceeded; retry after the delay given.",
                  headers={"Retry-After": str(max(1, math.ceil(retry_after)))})


def error_response(status: int) -> web.Response:
    """An RFC 9083 error response for a 5xx."""
    body = {"errorCode": status, "title": answers.reason(status),
            "description": ["The server is temporarily unable to service the request."]}
    return web.Response(status=status, content_type=RDAP_JSON, text=json.dumps(body))


@functools.cache
def registries() -> dict[str, tuple[tuple[str, ...], bool]]:
    """Registry id -> (labels, trailing slash), the catch-all holding every other ICANN TLD."""
    table = {name: (labels, slash) for name, labels, slash in REGISTRIES}
    taken = {label for labels, _ in table.values() for label in labels}
    table[CATCH_ALL] = (tuple(sorted(_icann_tlds() - taken)), True)
    return table


@functools.cache
def _label_index() -> dict[str, str]:
    return {label: name for name, (labels, _) in registries().items() for label in labels}


def registry_for(domain: str) -> str | None:
    """The registry serving ``domain`` by longest label match; None when no registry serves its TLD."""
    labels = domain.lower().strip(".").split(".")
    index = _label_index()
    for start in range(len(labels)):
        found = index.get(".".join(labels[start:]))
        if found:
            return found
    return None


def bootstrap_document(root: str) -> dict[str, Any]:
    """The dns.json bootstrap with every registry's base URL under ``root``."""
    return {
        "description": "RDAP bootstrap file for Domain Name System registrations",
        "publication": EPOCH.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "version": "1.0",
        "services": [
            [list(labels), [f"{root}/registry/{name}" + ("/" if slash else "")]]
            for name, (labels, slash) in registries().items()
        ],
    }


def domain_document(world: World, facts: DomainFacts, self_url: str) -> dict[str, Any]:
    """A registered domain in Verisign's RDAP shape."""
    upper = facts.domain.upper()
    rng = world.rng("rdap", facts.domain)
    tld = facts.domain.rsplit(".", 1)[-1].upper()
    registrar_host = re.sub(r"[^a-z0-9]", "", facts.registrar.lower().split()[0].split(".")[0])
    changed = facts.registration + (EPOCH - facts.registration) * rng.random()
    return {
        "objectClassName": "domain",
        "handle": f"{rng.randint(10_000, 2_999_999_999)}_DOMAIN_{tld}-VRSN",
        "ldhName": upper,
        "links": [
            {"value": self_url, "rel": "self", "href": self_url, "type": RDAP_JSON},
            {"value": self_url, "rel": "related", "type": RDAP_JSON,
             "href": f"https://rdap.{registrar_host}.com/rdap/domain/{upper}"},
        ],
        "status": rng.choice(STATUS_SETS),
        "entities": [_registrar(facts)],
        "events": [
            {"eventAction": "registration", "eventDate": _iso(facts.registration)},
            {"eventAction": "expiration", "eventDate": _iso(facts.expiration)},
            {"eventAction": "last changed", "eventDate": _iso(changed)},
            {"eventAction": "last update of RDAP database", "eventDate": _iso(EPOCH)},
        ],
        "secureDNS": {"delegationSigned": rng.random() < 0.2},
        "nameservers": [
            {"objectClassName": "nameserver", "ldhName": f"NS{i}.{upper}"} for i in range(1, facts.ns_count + 1)
        ],
        "rdapConformance": CONFORMANCE,
        "notices": _notices(),
    }


def _domain(world: World, request: web.Request) -> web.Response:
    registry = request.match_info["registry"]
    name = request.match_info["name"].strip().rstrip(".").lower()
    if registry not in registries():
        return _error(404, "Not Found", f"No registry {registry!r} here.")
    if not all(LABEL.match(label) for label in name.split(".")) or "." not in name:
        return _error(400, "Bad Request", f"Invalid domain name {name!r}.")
    # A registry only holds registered domains of its own TLDs: anything else is not found, as in real life.
    if registry_for(name) != registry or registered_domain(name) != name:
        return _error(404, "Not Found", f"The domain {name.upper()} is not in this registry.")
    facts = world.domain(name)
    if not facts.registered:
        return _error(404, "Not Found", f"The domain {name.upper()} is not registered.")
    self_url = str(request.url.with_query(None)).rsplit("/", 1)[0] + "/" + name.upper()
    return web.json_response(domain_document(world, facts, self_url), content_type=RDAP_JSON)


def _service_root(request: web.Request) -> str:
    # The app may be mounted under a prefix (/rdap in the emulator): keep whatever precedes dns.json.
    prefix = request.path[: -len(BOOTSTRAP_PATH)]
    return f"{request.scheme}://{request.host}{prefix}"


def _registrar(facts: DomainFacts) -> dict[str, Any]:
    return {
        "objectClassName": "entity",
        "handle": facts.registrar_iana_id,
        "roles": ["registrar"],
        "publicIds": [{"type": "IANA Registrar ID", "identifier": facts.registrar_iana_id}],
        "vcardArray": ["vcard", [["version", {}, "text", "4.0"], ["fn", {}, "text", facts.registrar]]],
        "entities": [{
            "objectClassName": "entity",
            "roles": ["abuse"],
            "vcardArray": ["vcard", [
                ["version", {}, "text", "4.0"],
                ["fn", {}, "text", ""],
                ["tel", {"type": "voice"}, "uri", "tel:+1.2083895740"],
                ["email", {}, "text", f"abuse@registrar-{facts.registrar_iana_id}.example"],
            ]],
        }],
    }


def _notices() -> list[dict[str, Any]]:
    return [
        {"title": "Terms of Use", "description": ["Service subject to Terms of Use."],
         "links": [{"href": TERMS_URL, "type": "text/html"}]},
        {"title": "Status Codes", "description": ["For more information on domain status codes, "
                                                  "please visit https://icann.org/epp"],
         "links": [{"href": "https://icann.org/epp", "type": "text/html"}]},
    ]


def _error(status: int, title: str, description: str, headers: dict[str, str] | None = None) -> web.Response:
    body = {"errorCode": status, "title": title, "description": [description], "rdapConformance": ["rdap_level_0"]}
    return web.json_response(body, status=status, content_type=RDAP_JSON, headers=headers)


def _icann_tlds() -> set[str]:
    """Single-label ICANN rules of the bundled public suffix list, IDNA-encoded."""
    tlds: set[str] = set()
    in_icann = False
    for line in Path(PSLFILE).read_text(encoding="utf-8").splitlines():
        if "===BEGIN ICANN DOMAINS===" in line:
            in_icann = True
        elif "===END ICANN DOMAINS===" in line:
            break
        elif in_icann and line and not line.startswith(("//", "*", "!")) and "." not in line.strip():
            try:
                tlds.add(line.strip().encode("idna").decode("ascii").lower())
            except UnicodeError:
                continue
    return tlds


def _iso(value: datetime) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


def sample(world: World) -> Sample:
    """A request this API answers from its World (the same-seed test)."""
    return Sample("/registry/com/domain/site9.com")
