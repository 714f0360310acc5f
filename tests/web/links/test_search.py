"""The links list's filters, sorts and cursors against a known data set: the same answers page by page, as one
export, as a plain Python reading of the rows, and on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from linkmeter.web.links.selectors.search import SearchError, parse_link_query
from tests.web.links import search_scenario

ROOT = Path(__file__).resolve().parents[3]


def check(outcome: dict[str, Any]) -> None:
    for query, answer in outcome["queries"].items():
        assert answer["paged"] == answer["expected"], query
        assert answer["exported"] == answer["expected"], query
    sizes = [len(answer["expected"]) for answer in outcome["queries"].values()]
    everything = sizes[0]
    assert everything == len(set(outcome["ada_urls"]))  # one row per link, the re-analysed ones included
    assert sum(0 < size < everything for size in sizes) >= 18  # the filters select, they neither keep nor drop all
    assert set(outcome["bob"]["expected"]) == set(outcome["bob_urls"]) == set(outcome["bob"]["paged"])


@pytest.fixture
def sqlite_outcome(db: None) -> dict[str, Any]:
    """The scenario on the test session's SQLite database."""
    return search_scenario.run()


def test_sqlite_answers_match_the_plain_reading_page_by_page_and_exported(sqlite_outcome: dict[str, Any]) -> None:
    check(sqlite_outcome)
    answers = sqlite_outcome["queries"]
    # The two links ada re-analysed (7777 points) lead: their newer analysis is the one listed.
    top = answers[json.dumps({"sort": "-hackernews.points"})]["expected"]
    assert {url.rsplit("/", 1)[-1] for url in top[:2]} == {"2", "3"}


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_postgresql_gives_the_same_answers_as_sqlite(tmp_path: Path, sqlite_outcome: dict[str, Any]) -> None:
    from linkmeter.bench.services import temporary_database
    from tests.integration.harness import POSTGRES_SERVER, ensure_postgresql

    ensure_postgresql()
    with temporary_database(POSTGRES_SERVER, prefix="linkmeter_it_search") as database:
        env = {**os.environ, "DATABASE_URL": database, "LINKMETER_DATA_DIR": str(tmp_path),
               "DJANGO_SETTINGS_MODULE": "linkmeter.web.config.settings", "PYTHONPATH": str(ROOT)}
        env.pop("LINKMETER_BROKER_URL", None)
        migrated = subprocess.run([sys.executable, "-m", "linkmeter", "migrate"], env=env, capture_output=True,
                                  text=True, timeout=120)
        assert migrated.returncode == 0, migrated.stderr
        run = subprocess.run([sys.executable, "-m", "tests.web.links.search_scenario"], env=env, cwd=ROOT,
                             capture_output=True, text=True, timeout=180)
        assert run.returncode == 0, run.stderr
    outcome = json.loads(run.stdout.strip().splitlines()[-1])
    check(outcome)
    for query, answer in outcome["queries"].items():
        assert answer["paged"] == sqlite_outcome["queries"][query]["paged"], query


@pytest.mark.parametrize(("given", "code", "parameter"), [
    ({"filters": ["nosuch.signal>1"]}, "unknown_signal", "filter"),
    ({"filters": ["page.title>1"]}, "unknown_signal", "filter"),  # a text signal is not comparable
    ({"filters": ["hackernews.points=>1"]}, "invalid_operator", "filter"),
    ({"filters": ["hackernews.points~1"]}, "invalid_operator", "filter"),
    ({"filters": ["hackernews.points>lots"]}, "invalid_value", "filter"),
    ({"filters": ["spam.flag>true"]}, "invalid_value", "filter"),
    ({"filters": ["spam.flag=yes"]}, "invalid_value", "filter"),
    ({"filters": ["hackernews.points"]}, "invalid_filter", "filter"),
    ({"sort": "-nosuch"}, "invalid_sort", "sort"),
    ({"status": ["done,nearly"]}, "invalid_status", "status"),
    ({"provider": ["nosuch:ok"]}, "unknown_provider", "provider"),
    ({"provider": ["page:fine"]}, "invalid_provider_status", "provider"),
    ({"after": "yesterday"}, "invalid_date", "after"),
    ({"limit": 0}, "invalid_limit", "limit"),
    ({"cursor": "%%%"}, "invalid_cursor", "cursor"),
])
def test_an_unusable_parameter_is_refused_naming_it(given: dict[str, Any], code: str, parameter: str) -> None:
    with pytest.raises(SearchError) as caught:
        parse_link_query(**given)
    assert caught.value.code == code
    assert caught.value.details["parameter"] == parameter


def test_a_cursor_from_another_sort_is_refused() -> None:
    from linkmeter.web.links.selectors.search import encode_cursor, parse_sort

    cursor = encode_cursor(parse_sort("-hackernews.points"), 5, 10)
    assert parse_link_query(sort="-hackernews.points", cursor=cursor).cursor == (5, 10)
    with pytest.raises(SearchError) as caught:
        parse_link_query(sort="hackernews.points", cursor=cursor)
    assert caught.value.code == "invalid_cursor"
