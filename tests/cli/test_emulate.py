"""`linkmeter emulate` as a real process: it describes itself, serves `analyze`, refuses bad knobs, stops on SIGTERM."""

from __future__ import annotations

import asyncio
import json
import re
import signal
import sys
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio

from linkmeter.emulator.knobs import Knobs
from linkmeter.providers.registry import PROVIDERS
from tests.conftest import MakeEmulator
from tests.processes import clean_environ, run_linkmeter

NEWS = "https://news.example.org/a/1"


@pytest_asyncio.fixture
async def emulate_process() -> AsyncIterator[asyncio.subprocess.Process]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "linkmeter", "emulate", "--port", "0", "--https-port", "0", "--dns-port", "0",
        "--ready-json", "--seed", "3",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=clean_environ(),
    )
    try:
        yield process
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def ready_info(process: asyncio.subprocess.Process) -> dict[str, Any]:
    assert process.stdout is not None
    line = await asyncio.wait_for(process.stdout.readline(), 30)
    assert line, "the emulator exited before it was ready"
    info: dict[str, Any] = json.loads(line)
    return info


async def test_the_emulator_describes_itself_serves_analyze_and_stops_on_sigterm(
        emulate_process: asyncio.subprocess.Process) -> None:
    info = await ready_info(emulate_process)
    assert info["seed"] == 3
    assert info["http_port"] > 0 and info["https_port"] > 0 and info["https_port"] != info["http_port"]
    assert info["url"] == f"http://127.0.0.1:{info['http_port']}"
    host, _, dns_port = info["dns"].rpartition(":")
    assert host == "127.0.0.1" and int(dns_port) > 0
    assert info["ca_pem"].startswith("-----BEGIN CERTIFICATE-----")
    assert {"hackernews", "rdap", "reddit", "wayback"} <= set(info["providers"])

    run = await run_linkmeter("analyze", "--emulator", info["url"], "--json", NEWS)
    assert run.code == 0, run.stderr
    [result] = run.json()["results"]
    assert result["status"] == "done"
    assert result["signals"]["page.status"] == 200

    emulate_process.send_signal(signal.SIGTERM)
    assert await asyncio.wait_for(emulate_process.wait(), 15) == 0


async def test_the_same_seed_gives_the_same_answers(emulate_process: asyncio.subprocess.Process,
                                                    emulator_factory: MakeEmulator) -> None:
    info = await ready_info(emulate_process)
    in_process = await emulator_factory(knobs=Knobs(seed=3))
    runs = await asyncio.gather(*(
        run_linkmeter("analyze", "--emulator", url, "--json", "--providers", "page,rdap,hackernews,reddit", NEWS)
        for url in (info["url"], in_process.url)))
    assert [run.code for run in runs] == [0, 0], [run.stderr for run in runs]
    signals = [run.json()["results"][0]["signals"] for run in runs]
    for found in signals:
        found.pop("page.response_ms")  # a measurement, not an answer
    assert signals[0] == signals[1]
    assert signals[0]["rdap.registration_date"] and signals[0]["page.title"]


async def test_a_bad_rate_limit_is_a_usage_error() -> None:
    run = await run_linkmeter("emulate", "--port", "0", "--https-port", "0", "--dns-port", "0",
                              "--rate-limit", "foo")
    assert run.code == 2
    assert "--rate-limit" in run.stderr and "PROVIDER=N/s" in run.stderr


@pytest.mark.parametrize("args", [["--hang", "nope"], ["--rate-limit", "telepathy=5/s"]])
async def test_an_unknown_provider_name_is_a_usage_error(args: list[str]) -> None:
    run = await run_linkmeter("emulate", "--port", "0", "--https-port", "0", "--dns-port", "0", *args)
    assert run.code == 2
    assert "unknown provider" in run.stderr and "hackernews" in run.stderr


async def test_the_known_provider_names_are_every_registered_provider_the_emulator_serves() -> None:
    run = await run_linkmeter("emulate", "--port", "0", "--https-port", "0", "--dns-port", "0", "--hang", "nope")
    assert run.code == 2
    known = re.search(r"known: ([\w, ]+)\)", run.stderr)
    assert known is not None, run.stderr
    assert known.group(1).split(", ") == sorted(cls.name for cls in PROVIDERS)
