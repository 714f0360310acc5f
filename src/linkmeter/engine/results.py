"""What the engine returns: one CallResult per provider call and one UrlResult per URL."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class CallStatus(StrEnum):
    OK = "ok"
    CACHED = "cached"
    ERROR = "error"
    TIMEOUT = "timeout"
    RATE_LIMITED = "rate_limited"
    CIRCUIT_OPEN = "circuit_open"
    SKIPPED = "skipped"
    DISABLED = "disabled"


SUCCESS = frozenset({CallStatus.OK, CallStatus.CACHED})
# The message of a call the URL's deadline cut short (still waiting or in flight when it came): the deadline is
# linkmeter's, not the provider's answer, so such a cell is deferred like a rate-limited one.
URL_DEADLINE_MESSAGE = "URL deadline reached"


class UrlStatus(StrEnum):
    DONE = "done"  # every enabled provider ended ok or cached
    PARTIAL = "partial"  # some did, some did not
    FAILED = "failed"  # none did


@dataclass(slots=True)
class CallResult:
    provider: str
    status: CallStatus
    latency_ms: float = 0.0
    attempts: int = 0
    message: str = ""
    signals: dict[str, Any] = field(default_factory=dict)
    raw: Any = None
    key: str | None = None

    def as_dict(self, *, include_raw: bool = False) -> dict[str, Any]:
        data: dict[str, Any] = {
            "status": str(self.status),
            "latency_ms": round(self.latency_ms, 1),
            "attempts": self.attempts,
            "message": self.message,
            "signals": self.signals,
        }
        if include_raw:
            data["raw"] = self.raw
        return data


@dataclass(slots=True)
class UrlResult:
    url: str
    status: UrlStatus
    signals: dict[str, Any]
    providers: dict[str, CallResult]
    elapsed_ms: float

    def as_dict(self, *, include_raw: bool = False) -> dict[str, Any]:
        return {
            "url": self.url,
            "status": str(self.status),
            "elapsed_ms": round(self.elapsed_ms, 1),
            "signals": self.signals,
            "providers": {
                name: result.as_dict(include_raw=include_raw) for name, result in self.providers.items()
            },
        }


def url_status(results: dict[str, CallResult]) -> UrlStatus:
    considered = [r for r in results.values() if r.status is not CallStatus.DISABLED]
    succeeded = sum(1 for r in considered if r.status in SUCCESS)
    if considered and succeeded == len(considered):
        return UrlStatus.DONE
    if succeeded:
        return UrlStatus.PARTIAL
    return UrlStatus.FAILED
