"""The Django settings read their LINKMETER_* variables through the engine's parser: a bad value is one
SettingsError naming the variable, when the settings are read."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import pytest

from linkmeter.engine.settings import SettingsError

WEB_NUMBERS = ["LINKMETER_UPLOAD_MAX_BYTES", "LINKMETER_MAX_URLS_PER_REQUEST", "LINKMETER_MAX_URL_LENGTH",
               "LINKMETER_UPLOAD_MAX_ROWS", "LINKMETER_RUNNER_CONCURRENCY", "LINKMETER_WATCHDOG_GRACE",
               "LINKMETER_DB_CONN_MAX_AGE"]


def read_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, **environ: str) -> dict[str, Any]:
    """The settings module run afresh (not the one Django loaded) with these variables."""
    monkeypatch.setenv("LINKMETER_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("DATABASE_URL", "postgres://user@127.0.0.1:5432/none")  # parsed only: never connected
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    spec = importlib.util.find_spec("linkmeter.web.config.settings")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)  # not put in sys.modules: Django's stays as it is
    spec.loader.exec_module(module)
    return vars(module)


@pytest.mark.parametrize("value", ["nan", "inf", "-1", "lots"])
@pytest.mark.parametrize("variable", WEB_NUMBERS)
def test_a_bad_number_in_any_web_setting_is_a_settings_error_naming_it(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path, variable: str, value: str) -> None:
    with pytest.raises(SettingsError, match=variable):
        read_settings(monkeypatch, tmp_path, **{variable: value})


@pytest.mark.parametrize(("variable", "value"), [("LINKMETER_DEBUG", "maybe"),
                                                  ("LINKMETER_FETCH_ALLOW", "not a network/99"),
                                                  ("LINKMETER_MAX_URL_LENGTH", "0")])
def test_other_bad_web_values_are_settings_errors_naming_them(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path, variable: str, value: str) -> None:
    with pytest.raises(SettingsError, match=variable):
        read_settings(monkeypatch, tmp_path, **{variable: value})


def test_the_web_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    read = read_settings(monkeypatch, tmp_path, LINKMETER_MAX_URLS_PER_REQUEST="7", LINKMETER_WATCHDOG_GRACE="2.5",
                         LINKMETER_ALLOWED_HOSTS="a.example, b.example", LINKMETER_DEBUG="yes",
                         LINKMETER_FETCH_ALLOW="127.0.0.1, hooks.internal", LINKMETER_DB_CONN_MAX_AGE="60")
    assert read["LINKMETER"]["MAX_URLS_PER_REQUEST"] == 7 and read["LINKMETER"]["WATCHDOG_GRACE_SECONDS"] == 2.5
    assert read["ALLOWED_HOSTS"] == ["a.example", "b.example"] and read["DEBUG"] is True
    assert read["FETCH_ALLOW"] == ["127.0.0.1", "hooks.internal"]  # the engine's reader, for callback URLs
    assert read["DATABASES"]["default"]["CONN_MAX_AGE"] == 60
    assert read["DATA_DIR"] == tmp_path.resolve()


def test_trusted_proxies_are_addresses_or_networks_and_none_by_default(monkeypatch: pytest.MonkeyPatch,
                                                                        tmp_path: Path) -> None:
    assert read_settings(monkeypatch, tmp_path)["TRUSTED_PROXIES"] == []
    chosen = read_settings(monkeypatch, tmp_path, LINKMETER_TRUSTED_PROXIES="10.0.0.1, 192.168.0.0/16,::1")
    assert chosen["TRUSTED_PROXIES"] == ["10.0.0.1/32", "192.168.0.0/16", "::1/128"]
    with pytest.raises(SettingsError, match="LINKMETER_TRUSTED_PROXIES"):
        read_settings(monkeypatch, tmp_path, LINKMETER_TRUSTED_PROXIES="proxy.example.org")
