"""Local mode only on loopback with no setting; required elsewhere, with a broker, or when asked."""

from __future__ import annotations

import pytest

from linkmeter.web.accounts.mode import AuthMode, AuthSettingError, resolve


@pytest.mark.parametrize(("environ", "host", "expected"), [
    ({}, "127.0.0.1", AuthMode.LOCAL),
    ({}, "::1", AuthMode.LOCAL),
    ({}, "localhost", AuthMode.LOCAL),
    ({}, None, AuthMode.LOCAL),
    ({}, "0.0.0.0", AuthMode.REQUIRED),
    ({}, "192.168.1.5", AuthMode.REQUIRED),
    ({"LINKMETER_AUTH": "local"}, "0.0.0.0", AuthMode.REQUIRED),
    ({"LINKMETER_AUTH": "required"}, "127.0.0.1", AuthMode.REQUIRED),
    ({"LINKMETER_BROKER_URL": "amqp://x"}, "127.0.0.1", AuthMode.REQUIRED),
    ({"LINKMETER_BROKER_URL": "amqp://x", "LINKMETER_AUTH": "local"}, "127.0.0.1", AuthMode.LOCAL),
])
def test_mode(environ: dict[str, str], host: str | None, expected: AuthMode) -> None:
    assert resolve(environ, host) is expected


def test_a_bad_value_is_an_error() -> None:
    with pytest.raises(AuthSettingError, match="LINKMETER_AUTH"):
        resolve({"LINKMETER_AUTH": "maybe"}, None)
