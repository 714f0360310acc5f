"""The emulator's client: its info document read and written in its established form, an emulator that does not
answer, and the LINKMETER_* settings (and CA file) that point another process at it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from aiohttp import web
from pytest_aiohttp.plugin import AiohttpServer as ServerFactory

from linkmeter.emulator.client import (
    EmulatorInfo,
    EmulatorUnreachable,
    environment,
    fetch_info,
    fetch_info_sync,
    write_ca,
)
from linkmeter.emulator.server import RunningEmulator

PEM = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"


def info(**changes: object) -> EmulatorInfo:
    fields: dict[str, object] = {"url": "http://127.0.0.1:8765", "http_port": 8765, "https_port": 8766,
                                 "dns": ("127.0.0.1", 8753), "ca_pem": PEM, "seed": 0,
                                 "providers": ("hackernews", "rdap", "urlhaus"), "keys": {"urlhaus": "demo"}}
    return EmulatorInfo(**{**fields, **changes})  # type: ignore[arg-type]


def test_the_document_keeps_its_form_and_reads_back_the_same() -> None:
    document = info().to_json()
    assert list(document) == ["url", "http_port", "https_port", "dns", "ca_pem", "seed", "providers", "keys"]
    assert document["dns"] == "127.0.0.1:8753" and document["providers"] == ["hackernews", "rdap", "urlhaus"]
    assert document["keys"] == {"urlhaus": "demo"}
    assert EmulatorInfo.from_json(json.loads(json.dumps(document))) == info()


def test_an_ipv6_dns_address_is_bracketed_and_no_dns_is_empty() -> None:
    v6 = info(url="http://[::1]:8765", dns=("::1", 8753))
    assert v6.to_json()["dns"] == "[::1]:8753"
    assert EmulatorInfo.from_json(v6.to_json()).dns == ("::1", 8753)
    assert environment(v6, ca_file="ca.pem")["LINKMETER_DNS_SERVERS"] == "[::1]:8753"
    none = info(dns=None)
    assert none.to_json()["dns"] == "" and EmulatorInfo.from_json(none.to_json()).dns is None
    assert "LINKMETER_DNS_SERVERS" not in environment(none, ca_file="ca.pem")


@pytest.mark.parametrize("document", [{}, {"url": "http://x"}, {**info().to_json(), "http_port": "many"},
                                      {**info().to_json(), "dns": "nowhere"}, {**info().to_json(), "ca_pem": "x"},
                                      {**info().to_json(), "providers": None}])
def test_anything_else_is_not_an_info_document(document: dict[str, object]) -> None:
    with pytest.raises(ValueError, match="not an emulator info document"):
        EmulatorInfo.from_json(document)


async def test_fetch_info_reads_a_running_emulator(emulator: RunningEmulator) -> None:
    assert await fetch_info(emulator.url + "/") == emulator.info()


async def test_no_emulator_at_the_url_is_unreachable_with_a_hint() -> None:
    with pytest.raises(EmulatorUnreachable, match=r"no linkmeter emulator answers at http://127\.0\.0\.1:1 .*"
                                                  r"`linkmeter emulate`"):
        await fetch_info("http://127.0.0.1:1")


async def test_a_server_that_is_no_emulator_is_unreachable(aiohttp_server: ServerFactory) -> None:
    async def not_info(_request: web.Request) -> web.Response:
        return web.json_response({"hello": "world"})

    app = web.Application()
    app.router.add_get("/_emulator/info", not_info)
    server = await aiohttp_server(app)
    with pytest.raises(EmulatorUnreachable, match="not an emulator info document"):
        await fetch_info(str(server.make_url("/")))


def test_fetch_info_sync_outside_a_loop() -> None:
    with pytest.raises(EmulatorUnreachable):
        fetch_info_sync("http://127.0.0.1:1")


def test_environment_and_the_ca_file_for_another_process(tmp_path: Path) -> None:
    ca_file = write_ca(info(), tmp_path)
    assert ca_file == tmp_path / "emulator-ca.pem" and ca_file.read_text() == PEM
    assert environment(info(), ca_file=ca_file) == {
        "LINKMETER_HACKERNEWS_BASE_URL": "http://127.0.0.1:8765/hackernews",
        "LINKMETER_RDAP_BASE_URL": "http://127.0.0.1:8765/rdap",
        "LINKMETER_URLHAUS_BASE_URL": "http://127.0.0.1:8765/urlhaus",
        "LINKMETER_URLHAUS_API_KEY": "demo",  # the key the emulated API accepts
        "LINKMETER_FETCH_ALLOW": "127.0.0.0/8",
        "LINKMETER_DNS_SERVERS": "127.0.0.1:8753",
        "LINKMETER_FETCH_PORT_MAP": "80=8765,443=8766",
        "LINKMETER_FETCH_CA_FILE": str(ca_file),
    }
