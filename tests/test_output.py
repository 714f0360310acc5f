"""Rendering results: one JSON document, CSV a spreadsheet can read, and a table that shows text literally."""

from __future__ import annotations

import csv
import io
import json

from rich.console import Console

from linkmeter.engine.plan import Plan
from linkmeter.engine.results import CallResult, CallStatus, UrlResult, UrlStatus
from linkmeter.inputs import InvalidLine
from linkmeter.output import csv_columns, print_table, render_csv, render_json
from linkmeter.providers.registry import PROVIDER_CLASSES

URL = "https://news.example.org/a/1"
TRICKY_TITLE = '[bold red]Sale[/] "50%", off\nnow [/oops]'


def full_plan() -> Plan:
    return Plan.build([cls() for cls in PROVIDER_CLASSES])


def sample_result() -> UrlResult:
    signals = {
        "url": URL, "host": "news.example.org", "domain": "example.org",
        "page.status": 200, "page.title": TRICKY_TITLE, "page.has_canonical": False,
        "page.has_open_graph": True, "reddit.subreddits": ["python", "programming"],
        "reddit.first_posted": None, "hackernews.points": 12345, "engagement.total": 12400,
    }
    providers = {
        "page": CallResult("page", CallStatus.OK, 12.34, 1, "", {"page.status": 200}),
        "rdap": CallResult("rdap", CallStatus.TIMEOUT, 10000.0, 3, "no answer within 10s"),
        "reddit": CallResult("reddit", CallStatus.CACHED, 0.2, 0, "from cache",
                             {"reddit.subreddits": ["python", "programming"]}),
        "wayback": CallResult("wayback", CallStatus.DISABLED, 0.0, 0, "switched off"),
    }
    return UrlResult(URL, UrlStatus.PARTIAL, signals, providers, 1234.56)


def test_json_is_one_document_with_every_result_and_its_provider_calls() -> None:
    document = json.loads(render_json([sample_result()], []))
    assert set(document) == {"results"}
    [result] = document["results"]
    assert result["url"] == URL and result["status"] == "partial" and result["elapsed_ms"] == 1234.6
    assert result["signals"]["page.title"] == TRICKY_TITLE
    assert result["signals"]["reddit.first_posted"] is None
    assert result["providers"]["rdap"] == {"status": "timeout", "latency_ms": 10000.0, "attempts": 3,
                                           "message": "no answer within 10s", "signals": {}}
    assert result["providers"]["page"]["latency_ms"] == 12.3
    assert "raw" not in result["providers"]["page"]


def test_json_lists_invalid_input_lines_and_keeps_non_ascii_text() -> None:
    result = sample_result()
    result.signals["page.title"] = "Crème brûlée — “déjà vu”"
    invalid = [InvalidLine("line 2", "example.com/x", "no_scheme", "URL has no scheme")]
    text = render_json([result], invalid)
    assert "Crème brûlée — “déjà vu”" in text
    document = json.loads(text)
    assert document["invalid"] == [{"where": "line 2", "input": "example.com/x", "code": "no_scheme",
                                    "message": "URL has no scheme"}]


def test_json_of_no_results_is_still_a_document() -> None:
    assert json.loads(render_json([], [])) == {"results": []}


def test_csv_has_a_column_per_signal_and_per_provider_status_without_clashes() -> None:
    plan = full_plan()
    columns = csv_columns(plan)
    assert columns[:3] == ["url", "status", "elapsed_ms"]
    assert len(columns) == len(set(columns)), "a column name appears twice"
    for provider in plan.providers:
        assert f"status:{provider.name}" in columns
        assert set(provider.provides) <= set(columns)


def test_csv_rows_read_back_with_lists_joined_bools_spelled_and_missing_values_empty() -> None:
    plan = full_plan()
    text = render_csv([sample_result()], plan)
    rows = list(csv.DictReader(io.StringIO(text)))
    assert len(rows) == 1
    row = rows[0]
    assert list(row) == csv_columns(plan)
    assert row["url"] == URL and row["status"] == "partial" and row["elapsed_ms"] == "1234.6"
    assert row["page.status"] == "200"  # the HTTP status, not the provider call's status
    assert row["status:page"] == "ok" and row["status:rdap"] == "timeout"
    assert row["status:reddit"] == "cached" and row["status:wayback"] == "disabled"
    assert row["page.title"] == TRICKY_TITLE  # commas, quotes and newlines survive quoting
    assert row["reddit.subreddits"] == "python;programming"
    assert row["page.has_canonical"] == "false" and row["page.has_open_graph"] == "true"
    assert row["reddit.first_posted"] == ""  # None
    assert row["rdap.registrar"] == ""  # never produced
    assert row["status:dns"] == ""  # no call recorded


def test_csv_of_a_smaller_plan_has_only_its_columns() -> None:
    plan = Plan.build([cls() for cls in PROVIDER_CLASSES], select=["rdap"])
    header = next(csv.reader(io.StringIO(render_csv([], plan))))
    assert header == ["url", "status", "elapsed_ms", *plan.providers[0].provides, "status:rdap"]


def render_table(results: list[UrlResult], plan: Plan) -> str:
    console = Console(file=io.StringIO(), width=300, color_system=None, force_terminal=False)
    print_table(console, results, plan)
    output = console.file.getvalue()
    assert isinstance(output, str)
    return output


def test_table_shows_scraped_text_literally_never_as_markup() -> None:
    result = sample_result()
    result.signals["page.title"] = "[bold]Sale[/bold] [/oops] [link=https://evil.example]x[/link]"
    result.providers["rdap"].message = "upstream said [red]no[/red]"
    output = render_table([result], full_plan())
    assert "[bold]Sale[/bold] [/oops]" in output
    assert "upstream said [red]no[/red]" in output


def test_table_formats_numbers_shows_missing_values_and_counts_providers_ok() -> None:
    output = render_table([sample_result()], full_plan())
    line = next(text for text in output.splitlines() if URL in text)
    cells = [cell.strip() for cell in line.strip("│ \n").split("│")]
    assert cells[0] == URL and cells[1] == "partial"
    header = next(text for text in output.splitlines() if "URL" in text and "Status" in text)
    headers = [cell.strip() for cell in header.strip("┃ \n").split("┃")]
    by_header = dict(zip(headers, cells, strict=True))
    assert by_header["HTTP"] == "200"
    assert by_header["HN points"] == "12,345"
    assert by_header["Domain age (d)"] == "-" and by_header["Captures"] == "-"
    assert by_header["Providers ok"] == "2/4"


def test_table_lists_provider_problems_but_not_disabled_providers() -> None:
    output = render_table([sample_result()], full_plan())
    assert "Provider problems: rdap timeout x1 (no answer within 10s)" in output
    assert "wayback" not in output.split("Provider problems:")[1]


def test_table_has_columns_only_for_the_providers_in_the_plan() -> None:
    plan = Plan.build([cls() for cls in PROVIDER_CLASSES], select=["page"])
    output = render_table([sample_result()], plan)
    assert "HTTP" in output and "Title" in output
    assert "HN points" not in output and "Engagement" not in output


def test_csv_defuses_text_a_spreadsheet_would_run_as_a_formula() -> None:
    result = sample_result()
    result.signals["page.title"] = '=HYPERLINK("https://evil.example","click")'
    result.signals["reddit.subreddits"] = ["@cmd", "python"]
    result.signals["page.description"] = "A normal description = fine"
    [row] = list(csv.DictReader(io.StringIO(render_csv([result], full_plan()))))
    assert row["page.title"] == "'" + '=HYPERLINK("https://evil.example","click")'
    assert row["reddit.subreddits"] == "'@cmd;python"
    assert row["page.description"] == "A normal description = fine"
    assert row["page.status"] == "200"  # numbers are left alone


def test_table_strips_terminal_control_characters_from_scraped_text() -> None:
    result = sample_result()
    result.signals["page.title"] = "Red\x1b[31m alert\x07"
    result.providers["rdap"].message = "bad\x1b]0;owned\x07 answer"
    output = render_table([result], full_plan())
    assert "\x1b" not in output and "\x07" not in output
    assert "Red[31m alert" in output
    assert "bad]0;owned answer" in output
