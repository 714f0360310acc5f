"""Records every upstream call an engine run makes (per URL and round) so the ceiling can replay them."""

from __future__ import annotations

import contextvars
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from linkmeter.engine.runner import Engine

_url: contextvars.ContextVar[str] = contextvars.ContextVar("bench_url", default="")
_depth: contextvars.ContextVar[int] = contextvars.ContextVar("bench_depth", default=1)


@dataclass(frozen=True, slots=True)
class Call:
    kind: str  # "http" (an API request), "page" (a guarded page fetch) or "dns"
    args: tuple[Any, ...]
    kwargs: dict[str, Any]


@dataclass(slots=True)
class Recording:
    calls: dict[str, dict[int, list[Call]]] = field(default_factory=lambda: defaultdict(lambda: defaultdict(list)))

    def add(self, call: Call) -> None:
        self.calls[_url.get()][_depth.get()].append(call)

    @property
    def total(self) -> int:
        return sum(len(c) for rounds in self.calls.values() for c in rounds.values())

    def rounds(self, url: str) -> list[list[Call]]:
        by_depth = self.calls.get(url, {})
        return [by_depth[d] for d in sorted(by_depth)]


def instrument(engine: Engine, recording: Recording) -> None:
    """Wrap the engine's clients and providers (bench only) so every upstream call is recorded."""
    http, dns = engine.http, engine.dns
    analyze = engine.analyze

    async def analyze_recorded(url: str, **kwargs: Any) -> Any:
        _url.set(url)  # each URL runs in its own task, so this stays with this URL's calls
        return await analyze(url, **kwargs)

    setattr(engine, "analyze", analyze_recorded)  # noqa: B010
    setattr(http, "request", _recorded(recording, "http", http.request))  # noqa: B010
    setattr(http, "fetch_page", _recorded(recording, "page", http.fetch_page))  # noqa: B010
    setattr(dns, "query", _recorded(recording, "dns", dns.query))  # noqa: B010
    for provider in engine.plan.providers:
        depth = engine.plan.depth[provider.name]
        original = provider.collect

        async def collect(ctx: Any, signals: Any, _original: Any = original, _depth_value: int = depth) -> Any:
            _depth.set(_depth_value)
            return await _original(ctx, signals)

        setattr(provider, "collect", collect)  # noqa: B010


def _recorded(recording: Recording, kind: str, method: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        recording.add(Call(kind, args, kwargs))
        return await method(*args, **kwargs)

    return wrapper
