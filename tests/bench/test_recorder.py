"""The bench's recording: a bulk query's request is recorded once, shared by the URLs whose keys it carried; with
bulk queries off every key is its own request; a provider call's sequential requests stay one chain."""

from __future__ import annotations

import asyncio
from typing import Any

from linkmeter.assembly import build_engine
from linkmeter.bench.recorder import Recording, instrument
from linkmeter.emulator.server import RunningEmulator
from linkmeter.providers.mastodon import DEFAULT_INSTANCES

URLS = [f"https://www.shop{i}.com/item/{i}" for i in range(40)]


async def record(emulator: RunningEmulator, select: list[str], urls: list[str], *, bulk: bool = True,
                 environ: dict[str, str] | None = None) -> Recording:
    engine = build_engine({"LINKMETER_BULK": "on" if bulk else "off", **(environ or {})}, select=select,
                          relax_rate_limits=True, emulator=emulator.info())
    recording = Recording()
    instrument(engine, recording)
    try:
        async with asyncio.timeout(60):
            results = [result async for result in engine.analyze_many(urls, concurrency=len(urls))]
    finally:
        await engine.close()
    assert all(result.providers[name].status == "ok" for result in results for name in select)
    return recording


def entries(call_kwargs: dict[str, Any]) -> list[str]:
    """The URLs a threatMatches:find body asks about."""
    return [entry["url"] for entry in call_kwargs["json_body"]["threatInfo"]["threatEntries"]]


async def test_a_bulk_query_is_one_request_shared_by_every_url_whose_key_it_carried(
        emulator: RunningEmulator) -> None:
    before = emulator.request_counts["safebrowsing"]
    recording = await record(emulator, ["safebrowsing"], URLS)
    sent = emulator.request_counts["safebrowsing"] - before
    assert recording.by_provider()["safebrowsing"] == recording.total == sent < len(URLS)
    for url in URLS:
        [[chain]] = recording.rounds(url)
        [call] = chain.calls
        assert call.args[0] == "POST" and url in entries(call.kwargs)  # the request that carried its key
    carried = [url for chain in recording.chains for call in chain.calls for url in entries(call.kwargs)]
    assert sorted(carried) == sorted(URLS)  # each key once, in the body recorded for the replay
    assert any(chain.shared and chain.urls > 1 for chain in recording.chains)


async def test_with_bulk_queries_off_every_key_is_a_request_of_its_own(emulator: RunningEmulator) -> None:
    recording = await record(emulator, ["safebrowsing"], URLS, bulk=False)
    assert recording.by_provider()["safebrowsing"] == len(URLS)
    for url in URLS:
        [[chain]] = recording.rounds(url)
        assert not chain.shared and entries(chain.calls[0].kwargs) == [url]


async def test_a_provider_calls_sequential_requests_are_one_chain_and_gathered_ones_chains_side_by_side(
        emulator: RunningEmulator) -> None:
    url = "https://www.shop1.com/item/1"
    before = dict(emulator.request_counts)
    recording = await record(emulator, ["commoncrawl", "mastodon"], [url])
    [chains] = recording.rounds(url)
    crawl = [chain for chain in chains if chain.provider == "commoncrawl"]
    # The crawl list, then one capture request per crawl, one after the other: one chain.
    assert len(crawl) == 1 and len(crawl[0].calls) == emulator.request_counts["commoncrawl"] - before.get(
        "commoncrawl", 0) > 2
    masto = [chain for chain in chains if chain.provider == "mastodon"]
    assert len(masto) == len(DEFAULT_INSTANCES)  # the instances are asked at once
    assert {chain.calls[0].args[1].split("/mastodon/")[1].split("/")[0] for chain in masto} == set(DEFAULT_INSTANCES)
