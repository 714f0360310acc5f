"""What a plan refuses: a status, a machine-readable code, and when to retry."""

from __future__ import annotations

from typing import Any

from linkmeter.web.links.services.errors import ServiceError


class PlanRefused(ServiceError):
    """Refused by the account's plan; nothing was consumed. ``status``: the HTTP status the API answers with;
    ``retry_after``: seconds (429 only)."""

    def __init__(self, status: int, code: str, message: str, details: Any = None,
                 retry_after: int | None = None) -> None:
        super().__init__(code, message, details)
        self.status = status
        self.retry_after = retry_after
