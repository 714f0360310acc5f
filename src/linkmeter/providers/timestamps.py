"""The one date format every provider reports: ISO-8601 in UTC, to the second, with a Z."""

from __future__ import annotations

from datetime import UTC, datetime

ISO_FORMAT = "%Y-%m-%dT%H:%M:%SZ"


def iso_utc(when: datetime | float) -> str:
    """``when`` is an aware datetime or seconds since the epoch."""
    moment = datetime.fromtimestamp(when, UTC) if isinstance(when, int | float) else when.astimezone(UTC)
    return moment.strftime(ISO_FORMAT)
