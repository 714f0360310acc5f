"""The Celery mode's settings: read through the engine's parser; the variables it shares, by the engine's readers."""

from __future__ import annotations

import pytest

from linkmeter.engine.settings import DEFAULT_URL_DEADLINE, EngineSettings, SettingsError
from linkmeter.web.config.celery import CelerySettings

CELERY_NUMBERS = ["LINKMETER_CHUNK_SIZE", "LINKMETER_WORKER_URLS", "LINKMETER_URL_DEADLINE",
                  "LINKMETER_WATCHDOG_INTERVAL", "LINKMETER_ORPHAN_INTERVAL", "LINKMETER_ORPHAN_AGE",
                  "LINKMETER_WEBHOOK_TRIES", "LINKMETER_WEBHOOK_BACKOFF", "LINKMETER_WEBHOOK_TIMEOUT"]


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "-1", "many"])
@pytest.mark.parametrize("variable", CELERY_NUMBERS)
def test_a_bad_number_in_any_celery_setting_is_a_settings_error_naming_it(variable: str, value: str) -> None:
    with pytest.raises(SettingsError, match=variable):
        CelerySettings.from_env({variable: value})


@pytest.mark.parametrize("variable", ["LINKMETER_CHUNK_SIZE", "LINKMETER_WORKER_URLS", "LINKMETER_WEBHOOK_TRIES"])
def test_counts_are_whole_numbers(variable: str) -> None:
    with pytest.raises(SettingsError, match=f"{variable} must be a whole number"):
        CelerySettings.from_env({variable: "2.5"})


def test_an_infinite_url_deadline_is_one_settings_error_on_both_sides() -> None:
    """It used to pass the Celery side's own parser and crash with an OverflowError importing the tasks."""
    for read in (EngineSettings.from_env, CelerySettings.from_env):
        with pytest.raises(SettingsError, match="LINKMETER_URL_DEADLINE must be a finite number, got 'inf'"):
            read({"LINKMETER_URL_DEADLINE": "inf"})


def test_the_url_deadline_and_redis_url_are_the_engine_s() -> None:
    assert CelerySettings.from_env({}).url_deadline == EngineSettings.from_env({}).url_deadline == DEFAULT_URL_DEADLINE
    chosen = CelerySettings.from_env({"LINKMETER_URL_DEADLINE": "12", "LINKMETER_REDIS_URL": " redis://r:6379/1 "})
    assert (chosen.url_deadline, chosen.redis_url) == (12.0, "redis://r:6379/1")
    assert chosen.chunk_time_limit == 2 * 12 + 60
    with pytest.raises(SettingsError, match="LINKMETER_REDIS_URL must be a redis://"):
        CelerySettings.from_env({"LINKMETER_REDIS_URL": "http://r:6379/1"})


def test_zero_is_a_value_where_it_means_something() -> None:
    chosen = CelerySettings.from_env({"LINKMETER_ORPHAN_AGE": "0", "LINKMETER_WEBHOOK_BACKOFF": "0"})
    assert (chosen.orphan_age, chosen.webhook_backoff) == (0.0, 0.0)
    with pytest.raises(SettingsError, match="LINKMETER_WEBHOOK_TIMEOUT must be more than 0"):
        CelerySettings.from_env({"LINKMETER_WEBHOOK_TIMEOUT": "0"})
