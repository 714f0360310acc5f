"""`linkmeter analyze` end to end, as a real process against the in-test emulator: outputs, errors, exit codes."""

from __future__ import annotations

import asyncio
import csv
import io
import socket
from pathlib import Path

import pytest

from linkmeter.emulator.knobs import Knobs
from linkmeter.emulator.server import RunningEmulator
from linkmeter.providers.registry import DEFAULT_NAMES
from tests.conftest import MakeEmulator
from tests.processes import run_linkmeter

PROVIDERS = set(DEFAULT_NAMES)  # what runs when --providers names none
CALL_FIELDS = {"status", "latency_ms", "attempts", "message", "signals"}
NEWS = "https://news.example.org/a/1"
BLOG = "https://techblog.example/blog/async-python-in-practice"
XSS = "https://xss.example.com/a/1"
def url_file(tmp_path: Path, *lines: str) -> str:
    path = tmp_path / "urls.txt"
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return str(path)


def stderr_line(stderr: str, marker: str) -> str:
    found = [line for line in stderr.splitlines() if line.startswith(marker)]
    assert len(found) == 1, stderr
    return found[0]


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


async def test_json_has_a_full_result_per_valid_url_and_bad_lines_are_reported(
        emulator: RunningEmulator, tmp_path: Path) -> None:
    urls = url_file(tmp_path, NEWS, "example.com/no-scheme", BLOG, "ftp://x/", XSS)
    run = await run_linkmeter("analyze", "--emulator", emulator.url, "--file", urls, "--json")
    assert run.code == 1, run.stderr  # an invalid line
    document = run.json()
    assert [result["url"] for result in document["results"]] == [NEWS, BLOG, XSS]
    for result in document["results"]:
        assert result["status"] in ("done", "partial")
        assert set(result["providers"]) == PROVIDERS
        for name, call in result["providers"].items():
            assert set(call) == CALL_FIELDS, name
            assert call["status"] in ("ok", "cached"), (name, call["message"])
            assert call["attempts"] >= 0 and call["latency_ms"] >= 0
        assert result["signals"]["url"] == result["url"]
        assert result["signals"]["page.status"] == 200
        assert "rdap.domain_age_days" in result["signals"]
        assert result["providers"]["rdap"]["signals"]["rdap.registered"] is True
    assert [line["where"] for line in document["invalid"]] == ["line 2", "line 4"]
    assert "no scheme" in stderr_line(run.stderr, "line 2:") and "[no_scheme]" in stderr_line(run.stderr, "line 2:")
    assert "'ftp'" in stderr_line(run.stderr, "line 4:")
    assert "[unsupported_scheme]" in stderr_line(run.stderr, "line 4:")


async def test_exit_status_is_0_when_every_line_is_valid_and_every_url_analysed(
        emulator: RunningEmulator, tmp_path: Path) -> None:
    urls = url_file(tmp_path, "# comment", NEWS, "", BLOG, NEWS + "#dup")
    run = await run_linkmeter("analyze", "--emulator", emulator.url, "--file", urls, "--json")
    assert run.code == 0, run.stderr
    document = run.json()
    assert [result["url"] for result in document["results"]] == [NEWS, BLOG]
    assert "invalid" not in document
    assert "skipped" not in run.stderr and "failed" not in run.stderr


async def test_csv_has_a_header_with_signal_columns_and_a_row_per_url(emulator: RunningEmulator) -> None:
    run = await run_linkmeter("analyze", "--emulator", emulator.url, "--csv", NEWS, XSS)
    assert run.code == 0, run.stderr
    reader = csv.DictReader(io.StringIO(run.stdout))
    rows = list(reader)
    assert reader.fieldnames is not None
    assert reader.fieldnames[:2] == ["url", "status"]
    assert {"page.status", "page.title", "rdap.domain_age_days", "dnsbl.listed_count", "engagement.total",
            "status:page", "status:engagement"} <= set(reader.fieldnames)
    assert len(reader.fieldnames) == len(set(reader.fieldnames))
    assert [row["url"] for row in rows] == [NEWS, XSS]
    for row in rows:
        assert row["status"] == "done"
        assert row["page.status"] == "200" and row["status:page"] == "ok"
        assert int(row["rdap.domain_age_days"]) > 0
    assert "<script>" in rows[1]["page.title"]


async def test_table_lists_the_urls_and_prints_scraped_titles_literally(emulator: RunningEmulator) -> None:
    run = await run_linkmeter("analyze", "--emulator", emulator.url, NEWS, XSS)
    assert run.code == 0, run.stderr
    assert NEWS in run.stdout and XSS in run.stdout
    xss_row = next(line for line in run.stdout.splitlines() if XSS in line)
    assert "Totally normal article <script>" in xss_row
    assert "done" in xss_row and f"{len(PROVIDERS)}/{len(PROVIDERS)}" in xss_row
    assert "\x1b[" not in run.stdout  # no terminal escapes when stdout is not a terminal


async def test_urls_can_come_from_stdin(emulator: RunningEmulator) -> None:
    stdin = f"{NEWS}\n[bold]not a url[/bold]\n{BLOG}\n"
    run = await run_linkmeter("analyze", "--emulator", emulator.url, "--file", "-", "--json", stdin=stdin)
    assert run.code == 1
    assert [result["url"] for result in run.json()["results"]] == [NEWS, BLOG]
    assert "'[bold]not a url[/bold]'" in stderr_line(run.stderr, "stdin line 2:")


async def test_a_dash_argument_reads_stdin_like_file_dash(emulator: RunningEmulator) -> None:
    stdin = f"{NEWS}\n[bold]not a url[/bold]\n{BLOG}\n"
    run = await run_linkmeter("analyze", "--emulator", emulator.url, "--json", "-", stdin=stdin)
    assert run.code == 1
    assert [result["url"] for result in run.json()["results"]] == [NEWS, BLOG]
    assert "'[bold]not a url[/bold]'" in stderr_line(run.stderr, "stdin line 2:")


async def test_stdin_urls_stand_where_the_dash_is_among_the_arguments(emulator: RunningEmulator) -> None:
    run = await run_linkmeter("analyze", "--emulator", emulator.url, "--json", NEWS, "-", "nope", XSS,
                              stdin=f"{BLOG}\n\nftp://example.org/\n")
    assert run.code == 1
    assert [result["url"] for result in run.json()["results"]] == [NEWS, BLOG, XSS]
    assert "'ftp://example.org/'" in stderr_line(run.stderr, "stdin line 3:")  # counted within stdin
    assert "'nope'" in stderr_line(run.stderr, "argument 3:")  # the '-' counts as an argument


async def test_only_the_chosen_providers_run(emulator: RunningEmulator) -> None:
    run = await run_linkmeter("analyze", "--emulator", emulator.url, "--providers", "page,rdap", "--json", NEWS)
    assert run.code == 0, run.stderr
    [result] = run.json()["results"]
    assert set(result["providers"]) == {"page", "rdap"}
    assert not [s for s in result["signals"] if s.split(".")[0] not in ("page", "rdap", "url", "host", "domain")]


async def test_a_url_whose_every_provider_fails_ends_failed_with_exit_1(
        emulator_factory: MakeEmulator) -> None:
    emulator = await emulator_factory(knobs=Knobs(hang=frozenset(PROVIDERS)))
    run = await run_linkmeter("analyze", "--emulator", emulator.url, "--timeout", "1", "--json", NEWS)
    assert run.code == 1
    [result] = run.json()["results"]
    assert result["status"] == "failed"
    assert {call["status"] for call in result["providers"].values()} <= {"timeout", "skipped"}
    assert result["providers"]["page"]["status"] == "timeout"
    assert "1 of 1 URL(s) failed" in run.stderr


@pytest.mark.parametrize(("args", "message"), [
    (["--json", "--csv", NEWS], "choose one of --json and --csv"),
    (["--providers", "nope", NEWS], "unknown provider(s): nope"),
    (["--providers", ",", NEWS], "--providers names no provider"),
    ([], "give URLs as arguments or with --file"),
    (["-", "-"], "standard input can be read once"),
    (["--file", "-", "-"], "standard input can be read once"),
])
async def test_usage_errors_exit_2_with_a_clear_message(
        emulator: RunningEmulator, args: list[str], message: str) -> None:
    run = await run_linkmeter("analyze", "--emulator", emulator.url, *args)
    assert run.code == 2
    assert message in run.stderr
    assert run.stdout == ""


async def test_an_unreachable_emulator_is_a_usage_error() -> None:
    url = f"http://127.0.0.1:{closed_port()}"
    run = await run_linkmeter("analyze", "--emulator", url, NEWS)
    assert run.code == 2
    line = stderr_line(run.stderr, "linkmeter:")
    assert f"no linkmeter emulator answers at {url}" in line and "linkmeter emulate" in line
    assert run.stdout == ""


async def test_help_shows_the_commands_and_options() -> None:
    top, analyze = await asyncio.gather(run_linkmeter("--help"), run_linkmeter("analyze", "--help"))
    assert top.code == 0 and analyze.code == 0
    for command in ("analyze", "emulate", "demo", "bench", "providers"):
        assert command in top.stdout
    for option in ("--file", "--json", "--csv", "--providers", "--emulator", "--timeout", "--concurrency"):
        assert option in analyze.stdout
    assert "A URL argument '-' reads URLs from standard input" in " ".join(analyze.stdout.split())
