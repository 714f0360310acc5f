"""The client side of a running emulator: what it says about itself (``GET /_emulator/info``), and the
LINKMETER_* settings that point linkmeter at it (for another process; in-process callers hand the
``EmulatorInfo`` to ``linkmeter.assembly.build_engine(emulator=...)`` instead)."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

INFO_PATH = "/_emulator/info"
INFO_TIMEOUT = 5.0  # seconds for the info request
# The addresses the SSRF guard lets through: the emulator's synthetic hosts resolve to its own loopback
# address, so --emulator works with an emulator on a loopback address only.
ALLOW = ("127.0.0.0/8",)
CA_FILE = "emulator-ca.pem"


class EmulatorUnreachable(RuntimeError):
    """No linkmeter emulator answers at the URL given (or its answer is no info document)."""


@dataclass(frozen=True, slots=True)
class EmulatorInfo:
    """A running emulator: its URL, its ports, its DNS server's address (None: it runs none), the CA
    certificate its TLS is signed by (PEM), its seed, the provider APIs it mounts and, for the keyed ones, the
    key each accepts (it refuses real keys, so every keyed provider runs against it with its demo key)."""

    url: str
    http_port: int
    https_port: int
    dns: tuple[str, int] | None
    ca_pem: str
    seed: int
    providers: tuple[str, ...]
    keys: Mapping[str, str] = field(default_factory=dict)

    @property
    def port_map(self) -> dict[int, int]:
        """The standard ports mapped to the emulator's: the synthetic web is on its HTTP and HTTPS ports."""
        return {80: self.http_port, 443: self.https_port}

    def base_url(self, provider: str) -> str:
        return f"{self.url.rstrip('/')}/{provider}"

    def to_json(self) -> dict[str, Any]:
        """The ``GET /_emulator/info`` document (and the ``--ready-json`` line), in its established form."""
        return {
            "url": self.url,
            "http_port": self.http_port,
            "https_port": self.https_port,
            "dns": _address_text(*self.dns) if self.dns is not None else "",
            "ca_pem": self.ca_pem,
            "seed": self.seed,
            "providers": list(self.providers),
            "keys": dict(self.keys),
        }

    @classmethod
    def from_json(cls, document: Mapping[str, Any]) -> EmulatorInfo:
        """Raises ValueError when ``document`` is not an info document."""
        try:
            info = cls(url=str(document["url"]).rstrip("/"), http_port=int(document["http_port"]),
                       https_port=int(document["https_port"]), dns=_parse_address(str(document.get("dns") or "")),
                       ca_pem=str(document["ca_pem"]), seed=int(document.get("seed", 0)),
                       providers=tuple(str(name) for name in document["providers"]),
                       keys={str(name): str(key) for name, key in dict(document.get("keys") or {}).items()})
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"not an emulator info document ({type(exc).__name__}: {exc})") from exc
        if not info.ca_pem.startswith("-----BEGIN CERTIFICATE-----"):
            raise ValueError("not an emulator info document (ca_pem holds no PEM certificate)")
        return info


async def fetch_info(url: str) -> EmulatorInfo:
    """Ask the emulator at ``url`` about itself (within INFO_TIMEOUT). Raises EmulatorUnreachable."""
    try:
        async with aiohttp.ClientSession() as session, session.get(
                url.rstrip("/") + INFO_PATH, timeout=aiohttp.ClientTimeout(INFO_TIMEOUT)) as response:
            response.raise_for_status()
            return EmulatorInfo.from_json(await response.json())
    except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
        raise EmulatorUnreachable(f"no linkmeter emulator answers at {url} ({exc or type(exc).__name__}); "
                                  "start one with `linkmeter emulate`") from exc


def fetch_info_sync(url: str) -> EmulatorInfo:
    """``fetch_info`` for a caller outside any event loop (``linkmeter worker`` at start-up)."""
    return asyncio.run(fetch_info(url))


def provider_urls(info: EmulatorInfo) -> dict[str, str]:
    """LINKMETER_<NAME>_BASE_URL for every provider API the emulator mounts, and LINKMETER_<NAME>_API_KEY for
    the keyed ones (their demo key)."""
    env = {f"LINKMETER_{name.upper()}_BASE_URL": info.base_url(name) for name in info.providers}
    env.update({f"LINKMETER_{name.upper()}_API_KEY": key for name, key in info.keys.items() if name in info.providers})
    return env


def emulator_variables(info: EmulatorInfo) -> frozenset[str]:
    """The names of the LINKMETER_* variables ``environment`` sets for ``info``."""
    return frozenset(environment(info, ca_file=""))


def environment(info: EmulatorInfo, *, ca_file: str | Path) -> dict[str, str]:
    """Every LINKMETER_* setting that points a linkmeter process (a worker, `serve`) at the emulator; its CA
    is read from ``ca_file`` (``write_ca``)."""
    env = provider_urls(info)
    env["LINKMETER_FETCH_ALLOW"] = ",".join(ALLOW)
    if info.dns is not None:
        env["LINKMETER_DNS_SERVERS"] = _address_text(*info.dns)
    env["LINKMETER_FETCH_PORT_MAP"] = ",".join(f"{source}={target}" for source, target in info.port_map.items())
    env["LINKMETER_FETCH_CA_FILE"] = str(ca_file)
    return env


def write_ca(info: EmulatorInfo, directory: str | Path, name: str = CA_FILE) -> Path:
    """Write the emulator's CA certificate into ``directory`` (for the processes ``environment`` is for)."""
    path = Path(directory) / name
    path.write_text(info.ca_pem, encoding="ascii")
    return path


def _address_text(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _parse_address(text: str) -> tuple[str, int] | None:
    """``host:port`` or ``[v6]:port`` (the info document's ``dns``); None for an empty text."""
    if not text:
        return None
    host, sep, port = text.rpartition(":")
    if not sep or not host:
        raise ValueError(f"expected host:port, got {text!r}")
    return host.removeprefix("[").removesuffix("]"), int(port)
