"""Batch webhooks: the signed JSON body, its HMAC-SHA256 signature (and how a receiver verifies it), and one
POST through linkmeter's SSRF-guarded HTTP client."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from linkmeter.engine.http import HttpClient
from linkmeter.engine.provider import ProviderError
from linkmeter.engine.ssrf import FetchRefused

SIGNATURE_HEADER = "X-Linkmeter-Signature"
TIMESTAMP_HEADER = "X-Linkmeter-Timestamp"
EVENT_HEADER = "X-Linkmeter-Event"
EVENT = "batch.finished"
UPDATED = "batch.updated"  # sent again: the batch's deferred cells are all settled (filled or given up)
MAX_ANSWER_BYTES = 64 * 1024  # what we read of the receiver's answer
DEFAULT_TOLERANCE = 300.0  # seconds a receiver accepts between the timestamp and its clock


def encode(summary: Mapping[str, Any]) -> bytes:
    """The body exactly as sent (and signed)."""
    return json.dumps(summary, separators=(",", ":"), sort_keys=True).encode()


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """``sha256=<hex>``: HMAC-SHA256 with ``secret`` of ``"<timestamp>." + body``."""
    mac = hmac.new(secret.encode(), str(timestamp).encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def verify(secret: str, body: bytes, timestamp: str, signed: str, *, tolerance: float = DEFAULT_TOLERANCE,
           now: float | None = None) -> bool:
    """What a receiver checks: the signature matches this body and timestamp, and the timestamp is recent
    (an old request replayed is refused)."""
    try:
        when = int(timestamp)
    except ValueError:
        return False
    if abs((time.time() if now is None else now) - when) > tolerance:
        return False
    return hmac.compare_digest(signature(secret, when, body), signed)


@dataclass(frozen=True, slots=True)
class Delivery:
    delivered: bool
    retryable: bool  # a later try may succeed (timeouts, connection errors, 429, 5xx)
    error: str = ""
    status: int | None = None


async def post(http: HttpClient, url: str, body: bytes, *, secret: str, within: float,
               timestamp: int | None = None, event: str = EVENT) -> Delivery:
    """POST ``body`` to ``url`` signed with ``secret``; a 2xx answer is a delivery. Never raises for the
    receiver's failures."""
    sent_at = int(time.time()) if timestamp is None else timestamp
    headers = {
        "Content-Type": "application/json",
        EVENT_HEADER: event,
        TIMESTAMP_HEADER: str(sent_at),
        SIGNATURE_HEADER: signature(secret, sent_at, body),
    }
    try:
        async with asyncio.timeout(within):
            answer = await http.request("POST", url, data=body, headers=headers, accept=range(200, 300),
                                        max_bytes=MAX_ANSWER_BYTES)
    except TimeoutError:
        return Delivery(False, True, f"no answer within {within:g}s")
    except FetchRefused as exc:
        return Delivery(False, False, f"refused ({exc.code}): {exc.message}")
    except ProviderError as exc:
        return Delivery(False, exc.retryable, exc.message, exc.status)
    return Delivery(True, False, "", answer.status)
