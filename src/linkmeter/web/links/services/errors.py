"""The error every service raises for bad input (the API and the UI show its code and message)."""

from __future__ import annotations

from typing import Any


class ServiceError(ValueError):
    """Bad input to a service: ``code`` is machine-readable, ``details`` says what exactly."""

    def __init__(self, code: str, message: str, details: Any = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.details = details
