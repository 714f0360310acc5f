"""The Celery mode's settings: read through the engine's parser; the variables it shares, by the engine's readers."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

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


LAZY_APP = textwrap.dedent("""
    import django
    from linkmeter.engine.settings import SettingsError
    from linkmeter.web.config import celery as config

    django.setup()
    from linkmeter.web.jobs import tasks  # defines the tasks: still no setting read
    try:
        config.celery_app()
    except SettingsError as exc:
        print("refused:", exc)
    else:
        app = config.celery_app()
        assert config.app is app, "celery -A finds the same app"
        chunk = app.tasks[config.RUN_CHUNK]
        ours = sorted(name for name in app.tasks if name.startswith("linkmeter."))
        print("limits:", chunk.soft_time_limit, chunk.time_limit, ours)
""")


@pytest.mark.parametrize("deadline", ["10", "many"])
def test_the_app_is_built_on_first_use_with_the_tasks_and_their_limits(tmp_path: Path, deadline: str) -> None:
    """Importing the config and the tasks reads no setting (a test need not set the environment first); the app,
    built when first asked for, refuses a bad setting then and gives run_chunk its backstop from the settings."""
    env = {**os.environ, "LINKMETER_BROKER_URL": "amqp://guest:guest@127.0.0.1:5672//",
           "LINKMETER_REDIS_URL": "redis://127.0.0.1:6379/0", "LINKMETER_URL_DEADLINE": deadline,
           "LINKMETER_DATA_DIR": str(tmp_path), "DJANGO_SETTINGS_MODULE": "linkmeter.web.config.settings"}
    done = subprocess.run([sys.executable, "-c", LAZY_APP], env=env, capture_output=True, text=True, timeout=60,
                          check=False)
    assert done.returncode == 0, done.stderr
    if deadline == "many":
        assert done.stdout.startswith("refused: LINKMETER_URL_DEADLINE")
    else:
        limit = int(CelerySettings.from_env({"LINKMETER_URL_DEADLINE": deadline}).chunk_time_limit)
        names = sorted(["linkmeter.run_chunk", "linkmeter.close_batch", "linkmeter.deliver_webhook",
                        "linkmeter.watchdog", "linkmeter.requeue_orphans", "linkmeter.spam_daily",
                        "linkmeter.spam_job", "linkmeter.refill_deferred"])
        assert done.stdout.strip() == f"limits: {limit} {limit + 30} {names}"
