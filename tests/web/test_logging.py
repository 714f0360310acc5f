"""Structured logs: one JSON object per line with the analysis and batch ids of the work, secrets masked."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from asgiref.sync import sync_to_async

from linkmeter.assembly import build_engine
from linkmeter.emulator.server import RunningEmulator
from linkmeter.engine.observe import logging_context, with_observer
from linkmeter.engine.results import CallResult, UrlResult
from linkmeter.engine.runner import Engine
from linkmeter.web.jobs.runner import InlineRunner, RunnerSettings
from linkmeter.web.links.models import FINAL_STATUSES, Analysis, BatchItem
from linkmeter.web.links.services.submission import analysis_submit
from linkmeter.web.logging import (
    MASK,
    JsonFormatter,
    Redactor,
    TextFormatter,
    environment_secrets,
    register_secret,
    resolve_format,
)
from tests.waiting import wait_until_async

KEY = "k3y-0f-the-reddit-api-8c1f"
WEBHOOK = "whsec-9d8e7f6a5b4c3d2e1f"


def record(message: str, *args: Any, level: int = logging.INFO, name: str = "linkmeter.test",
           exc: bool = False, **extra: Any) -> logging.LogRecord:
    made = logging.LogRecord(name, level, __file__, 1, message, args, None)
    if exc:
        try:
            raise ValueError(f"boom with {KEY}")
        except ValueError:
            made.exc_info = sys.exc_info()
    made.__dict__.update(extra)
    return made


def redactor() -> Redactor:
    return Redactor(environment_secrets({"LINKMETER_REDDIT_API_KEY": KEY, "LINKMETER_WEBHOOK_SECRET": WEBHOOK,
                                         "LINKMETER_PAGE_ENABLED": "true", "LINKMETER_QUEUE": "linkmeter",
                                         "HOME": "/home/someone-long"}))


def test_a_json_line_has_time_level_logger_message_and_the_context_of_the_work() -> None:
    formatter = JsonFormatter(redactor())
    with logging_context(analysis_id=42, batch_id=7, url="https://news.example.org/a/1"):
        line = formatter.format(record("stored %d results\nfor one URL", 9, level=logging.WARNING))
    assert "\n" not in line
    data = json.loads(line)
    assert data == {"ts": data["ts"], "level": "WARNING", "logger": "linkmeter.test",
                    "message": "stored 9 results\nfor one URL", "analysis_id": 42, "batch_id": 7,
                    "url": "https://news.example.org/a/1"}
    assert data["ts"].endswith("Z") and abs(time.time() - _epoch(data["ts"])) < 60
    outside = json.loads(formatter.format(record("idle")))
    assert set(outside) == {"ts", "level", "logger", "message"}


def test_fields_given_as_extra_win_and_exceptions_are_kept_on_the_line() -> None:
    formatter = JsonFormatter(redactor())
    with logging_context(analysis_id=1):
        data = json.loads(formatter.format(record("failed", exc=True, analysis_id=2, provider="rdap")))
    assert data["analysis_id"] == 2 and data["provider"] == "rdap"
    assert "ValueError: boom with" in data["exc"] and KEY not in data["exc"]


def test_the_text_format_appends_the_context_fields() -> None:
    with logging_context(analysis_id=5, batch_id=6):
        line = TextFormatter(redactor()).format(record("hello"))
    assert line.endswith("INFO linkmeter.test hello [analysis_id=5 batch_id=6]")


@pytest.mark.parametrize(("text", "gone"), [
    (f"calling reddit with key {KEY}", KEY),
    (f"signing with {WEBHOOK} now", WEBHOOK),
    ("headers {'Authorization': 'Bearer abc.def.ghi', 'Accept': '*/*'}", "abc.def.ghi"),
    ("Authorization: Basic dXNlcjpwYXNz", "dXNlcjpwYXNz"),
    ("broker amqp://linkmeter:s3cretpass@rabbit:5672// is down", "s3cretpass"),
    ("database postgres://app:hunter2hunter2@db/linkmeter refused", "hunter2hunter2"),
    ("GET https://api.example.com/v1?api_key=abcdef123456&q=1", "abcdef123456"),
    ("X-Api-Key: zz99yy88xx77", "zz99yy88xx77"),
    ("X-Linkmeter-Signature: sha256=0123456789abcdef", "0123456789abcdef"),
])
def test_secrets_are_masked(text: str, gone: str) -> None:
    masked = json.loads(JsonFormatter(redactor()).format(record("%s", text)))["message"]
    assert gone not in masked and MASK in masked


def test_ordinary_words_settings_and_urls_are_left_alone() -> None:
    text = "queue linkmeter: page enabled true; fetched https://news.example.org/a/1?q=1 from /home/someone"
    assert JsonFormatter(redactor()).format(record("%s", text)).count(MASK) == 0


def test_a_secret_registered_at_run_time_is_masked_too() -> None:
    register_secret("per-batch-secret-1234")
    assert MASK in TextFormatter(Redactor()).format(record("using per-batch-secret-1234"))


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_the_format_is_text_on_a_terminal_and_json_elsewhere_unless_chosen() -> None:
    assert resolve_format("auto", Tty()) == "text"
    assert resolve_format("", io.StringIO()) == "json"
    assert resolve_format("JSON", Tty()) == "json" and resolve_format("text", io.StringIO()) == "text"
    with pytest.raises(ValueError, match="LINKMETER_LOG_FORMAT"):
        resolve_format("yaml")


@pytest.mark.parametrize(("chosen", "json_lines"), [(None, True), ("json", True), ("text", False)])
def test_the_settings_log_json_lines_to_stderr_by_default_when_not_on_a_terminal(
        tmp_path: Path, chosen: str | None, json_lines: bool) -> None:
    env = {k: v for k, v in os.environ.items() if k != "LINKMETER_LOG_FORMAT"}
    env.update({"LINKMETER_DATA_DIR": str(tmp_path), "LINKMETER_HACKERNEWS_API_KEY": KEY,
                "DJANGO_SETTINGS_MODULE": "linkmeter.web.config.settings"})
    if chosen:
        env["LINKMETER_LOG_FORMAT"] = chosen
    script = ("import django, logging; django.setup()\n"
              "from linkmeter.engine.observe import logging_context\n"
              "with logging_context(analysis_id=3, batch_id=4):\n"
              f"    logging.getLogger('linkmeter.x').warning('key is %s', {KEY!r})\n")
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    line = done.stderr.strip().splitlines()[-1]
    assert KEY not in line
    if json_lines:
        assert json.loads(line) | {"ts": None} == {"ts": None, "level": "WARNING", "logger": "linkmeter.x",
                                                   "message": f"key is {MASK}", "analysis_id": 3, "batch_id": 4}
    else:
        assert line.endswith(f"WARNING linkmeter.x key is {MASK} [analysis_id=3 batch_id=4]")


# -- inside the embedded runner --------------------------------------------------------------------------


class Lines(logging.Handler):
    """Formats every record as it is made (in the context of the code that logged it)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(JsonFormatter(Redactor()))
        self.lines: list[dict[str, Any]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(json.loads(self.format(record)))


class LoggingObserver:
    """Logs each finished call from inside the analysis, as any code in the engine might."""

    log = logging.getLogger("linkmeter.test.inside")

    def call_finished(self, provider: str, result: CallResult) -> None:
        self.log.info("call of %s ended %s", provider, result.status)

    def url_finished(self, result: UrlResult) -> None:
        self.log.info("url ended %s", result.status)


@pytest.fixture
def captured() -> Iterator[Lines]:
    handler = Lines()
    logger = logging.getLogger("linkmeter.test.inside")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    yield handler
    logger.removeHandler(handler)


@pytest_asyncio.fixture
async def engine(emulator: RunningEmulator) -> AsyncIterator[Engine]:
    built = build_engine({}, relax_rate_limits=True, url_deadline=10, emulator=emulator.info())
    built.observer = with_observer(built.observer, LoggingObserver())
    yield built
    await built.close()


@pytest.mark.django_db(transaction=True)
async def test_a_log_call_inside_an_analysis_carries_its_analysis_and_batch_ids(
        engine: Engine, captured: Lines) -> None:
    urls = ["https://news.example.org/a/1", "https://blog.example.com/post"]
    first = await sync_to_async(analysis_submit)(urls=urls, providers=["rdap", "dnsbl"])
    second = await sync_to_async(analysis_submit)(urls=["https://shop.example.net/"], providers=["rdap"])
    runner = InlineRunner(engine, RunnerSettings(concurrency=4, poll_interval=0.1, flush_interval=0.05))
    task = asyncio.create_task(runner.run())
    try:
        await wait_until_async(lambda: runner.database(_all_final), 20, message="the analyses to finish")
    finally:
        runner.stop()
        await asyncio.wait_for(task, 30)
    expected = await sync_to_async(_batch_and_url_of_each_analysis)()
    assert set(expected) == {a.pk for a in [*first.analyses, *second.analyses]}
    calls = [line for line in captured.lines if line["message"].startswith("call of")]
    assert len(calls) == 2 * 2 + 1  # rdap and dnsbl for two URLs, rdap for one
    for line in [*calls, *(line for line in captured.lines if line["message"].startswith("url ended"))]:
        assert (line["batch_id"], line["url"]) == expected[line["analysis_id"]], line
    assert {line["analysis_id"] for line in calls} == set(expected)
    assert {line["batch_id"] for line in calls} == {first.batch.pk, second.batch.pk}


def _all_final() -> bool:
    return not Analysis.objects.exclude(status__in=list(FINAL_STATUSES)).exists()


def _batch_and_url_of_each_analysis() -> dict[int, tuple[int, str]]:
    return {item.analysis_id: (item.batch_id, item.analysis.link.url)
            for item in BatchItem.objects.select_related("analysis__link")}


def _epoch(ts: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp()
