"""`linkmeter demo` as a real process: every sample URL is analysed offline and shown."""

from __future__ import annotations

from linkmeter.emulator.web import SAMPLE_URLS
from linkmeter.engine.urls import parse_url
from tests.processes import run_linkmeter

SAMPLES = [parse_url(url).url for url in SAMPLE_URLS]
URL_COLUMN_CHARS = 47  # the table shortens longer URLs to this many characters and an ellipsis


async def test_the_demo_table_shows_every_sample_url() -> None:
    run = await run_linkmeter("demo")
    assert run.code == 0, run.stderr
    rows = [line for line in run.stdout.splitlines() if "://" in line]
    assert len(rows) == len(SAMPLES)
    for url, row in zip(SAMPLES, rows, strict=True):
        shown = url if len(url) <= URL_COLUMN_CHARS + 1 else url[:URL_COLUMN_CHARS] + "…"
        assert shown in row
        assert "failed" not in row
    assert "no internet needed" in run.stderr


async def test_the_demo_json_has_every_sample_url_analysed() -> None:
    run = await run_linkmeter("demo", "--json")
    assert run.code == 0, run.stderr
    results = {result["url"]: result for result in run.json()["results"]}
    assert list(results) == SAMPLES
    for url, result in results.items():
        assert result["status"] in ("done", "partial"), url
        assert isinstance(result["signals"]["page.status"], int), url
        assert result["providers"]["page"]["status"] in ("ok", "cached"), url
