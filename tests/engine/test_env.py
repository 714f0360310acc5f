"""The one parser of LINKMETER_* values: defaults for unset or blank, and a SettingsError naming the variable."""

from __future__ import annotations

import pytest

from linkmeter.engine import env
from linkmeter.engine.errors import SettingsError

NAME = "LINKMETER_SOMETHING"


@pytest.mark.parametrize(("raw", "expected"), [(None, 7.5), ("", 7.5), ("  ", 7.5), ("2", 2.0), (" 0.25 ", 0.25),
                                               ("0", 0.0), ("1e3", 1000.0)])
def test_a_number_or_the_default(raw: str | None, expected: float) -> None:
    environ = {} if raw is None else {NAME: raw}
    assert env.number(environ, NAME, 7.5) == expected


@pytest.mark.parametrize(("raw", "reason"), [
    ("soon", "must be a number"), ("nan", "must be a finite number"), ("inf", "must be a finite number"),
    ("-inf", "must be a finite number"), ("1e999", "must be a finite number"), ("-1", "must not be negative"),
])
def test_a_bad_number_is_a_settings_error_naming_the_variable(raw: str, reason: str) -> None:
    with pytest.raises(SettingsError, match=f"{NAME} {reason}, got {raw!r}"):
        env.number({NAME: raw}, NAME, 1.0)
    with pytest.raises(SettingsError, match=NAME):
        env.whole({NAME: raw}, NAME, 1)


def test_positive_refuses_zero() -> None:
    assert env.number({NAME: "0"}, NAME, 1.0) == 0.0
    with pytest.raises(SettingsError, match=f"{NAME} must be more than 0"):
        env.number({NAME: "0"}, NAME, 1.0, positive=True)
    with pytest.raises(SettingsError, match=f"{NAME} must be more than 0"):
        env.whole({NAME: "0"}, NAME, 1, positive=True)


def test_a_whole_number() -> None:
    assert env.whole({NAME: "25"}, NAME, 1) == 25
    assert env.whole({}, NAME, 3) == 3
    assert isinstance(env.whole({NAME: "4.0"}, NAME, 1), int)
    with pytest.raises(SettingsError, match=f"{NAME} must be a whole number, got '1.5'"):
        env.whole({NAME: "1.5"}, NAME, 1)


@pytest.mark.parametrize(("raw", "expected"), [("true", True), ("YES", True), (" on ", True), ("1", True),
                                               ("false", False), ("No", False), ("off", False), ("0", False),
                                               ("", True)])
def test_a_flag(raw: str, expected: bool) -> None:
    assert env.flag({NAME: raw}, NAME, True) is expected


def test_a_bad_flag_names_the_variable() -> None:
    with pytest.raises(SettingsError, match=f"{NAME} must be true or false, got 'maybe'"):
        env.flag({NAME: "maybe"}, NAME, False)


def test_text_lists_and_optional_values() -> None:
    assert env.text({NAME: "  x  "}, NAME, "d") == "x" and env.text({NAME: " "}, NAME, "d") == "d"
    assert env.optional({NAME: " "}, NAME) is None and env.optional({NAME: " u "}, NAME) == "u"
    assert env.items({NAME: " a, b,,c "}, NAME) == ["a", "b", "c"]
    assert env.items({}, NAME, ["d"]) == ["d"] and env.items({NAME: " "}, NAME) == []


@pytest.mark.parametrize(("raw", "expected"), [
    (None, 5), ("", 5), ("0", 0), ("1048576", 1048576), ("64MB", 64 * 1024**2), ("64 mb", 64 * 1024**2),
    ("64M", 64 * 1024**2), ("512KiB", 512 * 1024), ("512kb", 512 * 1024), ("1.5G", 3 * 1024**3 // 2),
    ("100B", 100),
])
def test_a_size_in_bytes(raw: str | None, expected: int) -> None:
    environ = {} if raw is None else {NAME: raw}
    assert env.size(environ, NAME, 5) == expected


@pytest.mark.parametrize(("raw", "reason"), [
    ("lots", "must be a size like 64MB"), ("-1MB", "must be a size like 64MB"), ("64TB", "must be a size like 64MB"),
    ("MB", "must be a size like 64MB"), ("iB", "must be a size like 64MB"), ("1.5", "must be a whole number of bytes"),
])
def test_a_bad_size_is_a_settings_error_naming_the_variable(raw: str, reason: str) -> None:
    with pytest.raises(SettingsError, match=f"{NAME} {reason}"):
        env.size({NAME: raw}, NAME, 1)
