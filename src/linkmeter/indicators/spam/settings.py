"""The spam indicator's one setting: LINKMETER_SPAM_THRESHOLD, the score at or above which a link is flagged."""

from __future__ import annotations

from collections.abc import Mapping

from linkmeter.engine import env
from linkmeter.engine.errors import SettingsError

DEFAULT_THRESHOLD = 0.5


def threshold(environ: Mapping[str, str]) -> float:
    """LINKMETER_SPAM_THRESHOLD: a number in (0, 1]; default 0.5. Raises SettingsError otherwise."""
    value = env.number(environ, "LINKMETER_SPAM_THRESHOLD", DEFAULT_THRESHOLD, positive=True)
    if value > 1:
        raise SettingsError(f"LINKMETER_SPAM_THRESHOLD must be at most 1, got {value:g}")
    return value
