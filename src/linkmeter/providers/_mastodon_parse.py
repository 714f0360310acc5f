"""Reading Mastodon's answers for the mastodon provider: statuses linking a URL, trending-link uses, rate headers."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from selectolax.lexbor import LexborHTMLParser

from linkmeter.engine.provider import ProviderError
from linkmeter.providers.hackernews import match_key


@dataclass(frozen=True, slots=True)
class Status:
    uri: str  # the ActivityPub id: the same status seen on several instances has one uri
    reblogs: int
    favourites: int
    replies: int


def status_links(status: Mapping[str, Any]) -> Iterator[str]:
    """The URLs a status links: its preview card's and every ``<a href>`` of its HTML content."""
    card = status.get("card")
    if isinstance(card, dict) and isinstance(card.get("url"), str):
        yield card["url"]
    content = status.get("content")
    if isinstance(content, str) and "href" in content:
        for anchor in LexborHTMLParser(content).css("a[href]"):
            href = anchor.attributes.get("href")
            if href:
                yield href


def linking_statuses(payload: Any, target: str) -> list[Status]:
    """The statuses of a ``/api/v2/search`` answer that link ``target`` (scheme and trailing slash ignored)."""
    if not isinstance(payload, dict) or not isinstance(payload.get("statuses"), list):
        raise ProviderError("unexpected Mastodon search answer: no 'statuses' list")
    wanted = match_key(target)
    found: dict[str, Status] = {}
    for status in payload["statuses"]:
        if not isinstance(status, dict) or wanted is None:
            continue
        uri = status.get("uri") or status.get("url") or status.get("id")
        if not isinstance(uri, str) or uri in found:
            continue
        if any(match_key(link) == wanted for link in status_links(status)):
            found[uri] = Status(uri, _count(status.get("reblogs_count")), _count(status.get("favourites_count")),
                                _count(status.get("replies_count")))
    return list(found.values())


def merge_statuses(seen: list[list[Status]]) -> list[Status]:
    """One status per uri across instances, each count the highest any instance knows (an instance counts only
    the interactions that reached it; the status's own instance knows them all)."""
    merged: dict[str, Status] = {}
    for statuses in seen:
        for status in statuses:
            known = merged.get(status.uri)
            merged[status.uri] = status if known is None else Status(
                status.uri, max(known.reblogs, status.reblogs), max(known.favourites, status.favourites),
                max(known.replies, status.replies))
    return list(merged.values())


def trend_uses(payload: Any, target: str) -> int:
    """Uses over the history of the trending links (``/api/v1/trends/links``) that are ``target``; the history's
    numbers are strings (``{"day": "1661817600", "accounts": "7", "uses": "7"}``)."""
    if not isinstance(payload, list):
        raise ProviderError("unexpected Mastodon trends answer: not a list of preview cards")
    wanted = match_key(target)
    total = 0
    for card in payload:
        if not isinstance(card, dict) or not isinstance(card.get("url"), str) or match_key(card["url"]) != wanted:
            continue
        history = card.get("history")
        for day in history if isinstance(history, list) else []:
            total += _count(day.get("uses")) if isinstance(day, dict) else 0
    return total


def reset_time(headers: Mapping[str, str], now: float) -> float | None:
    """When the instance's rate-limit window ends (epoch seconds), from ``X-RateLimit-Reset`` (an ISO timestamp;
    epoch seconds are read too), else from ``Retry-After`` seconds; None when neither says."""
    reset = headers.get("X-RateLimit-Reset", "").strip()
    if reset:
        if reset.replace(".", "", 1).isdigit():
            return float(reset)
        try:
            when = datetime.fromisoformat(reset)
        except ValueError:
            when = None
        if when is not None:
            return (when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp()
    retry_after = headers.get("Retry-After", "").strip()
    return now + float(retry_after) if retry_after.isdigit() else None


def exhausted(headers: Mapping[str, str]) -> bool:
    """``X-RateLimit-Remaining`` says no request is left in this window."""
    remaining = headers.get("X-RateLimit-Remaining", "").strip()
    try:
        return float(remaining) < 1
    except ValueError:
        return False


def _count(value: object) -> int:
    """A count sent as a number or as a string of digits; anything else counts 0."""
    if isinstance(value, bool):
        return 0
    if isinstance(value, int):
        return max(0, value)
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    return 0
