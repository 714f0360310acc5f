"""Records every upstream call an engine run makes (per URL, round and provider call) so the ceiling can replay them.

A provider call's requests are kept as *chains*: the requests one task of the call made, one after the other
(Common Crawl's crawls, a Bluesky session then its search), while the chains of one call ran side by side
(Mastodon's instances, the DNS lookups of one domain, gathered). A bulk query's request (``collect_many``) is
one chain shared by every URL whose key it carried: the ceiling sends it once and each of those URLs waits
for it, as each waited for it in the engine.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from linkmeter.engine.runner import Engine

_url: contextvars.ContextVar[str] = contextvars.ContextVar("bench_url", default="")


@dataclass(frozen=True, slots=True)
class Call:
    kind: str  # "http" (an API request), "page" (a guarded page fetch) or "dns"
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    provider: str = ""


@dataclass(eq=False, slots=True)
class Chain:
    """Requests one task made one after the other; ``urls`` > 1: a bulk query's, shared by those URLs."""

    provider: str
    calls: list[Call] = field(default_factory=list)
    urls: int = 1

    @property
    def shared(self) -> bool:
        return self.urls > 1


@dataclass(eq=False, slots=True)
class _Invocation:
    """One provider call (``collect``) or one bulk request (``collect_many``, every attempt): its chains by task."""

    provider: str
    depth: int
    owners: tuple[str, ...]  # the URLs it answers
    chains: dict[asyncio.Task[Any] | None, Chain] = field(default_factory=dict)


_invocation: contextvars.ContextVar[_Invocation | None] = contextvars.ContextVar("bench_invocation", default=None)


@dataclass(slots=True)
class Recording:
    calls: dict[str, dict[int, list[Chain]]] = field(default_factory=lambda: defaultdict(lambda: defaultdict(list)))
    chains: list[Chain] = field(default_factory=list)  # each once, shared ones too

    def chain_for(self, invocation: _Invocation | None, provider: str) -> Chain:
        task = asyncio.current_task()
        if invocation is None:  # outside any provider call: a chain of its own in round one of its URL
            chain = Chain(provider)
            self._register(chain, (_url.get(),), 1)
            return chain
        found = invocation.chains.get(task)
        if found is None:
            found = invocation.chains[task] = Chain(invocation.provider, urls=len(set(invocation.owners)))
            self._register(found, invocation.owners, invocation.depth)
        return found

    def _register(self, chain: Chain, owners: Sequence[str], depth: int) -> None:
        self.chains.append(chain)
        for url in dict.fromkeys(owners):
            self.calls[url][depth].append(chain)

    @property
    def total(self) -> int:
        """Upstream requests (a bulk query's once)."""
        return sum(len(chain.calls) for chain in self.chains)

    def by_provider(self) -> Counter[str]:
        """Upstream requests per provider (a bulk query's once)."""
        counts: Counter[str] = Counter()
        for chain in self.chains:
            counts[chain.provider] += len(chain.calls)
        return counts

    def rounds(self, url: str) -> list[list[Chain]]:
        by_depth = self.calls.get(url, {})
        return [by_depth[d] for d in sorted(by_depth)]


def instrument(engine: Engine, recording: Recording) -> None:
    """Wrap the engine's clients, providers and bulk-query batchers (bench only) so every upstream call is
    recorded with the URLs it was for."""
    http, dns = engine.http, engine.dns
    analyze = engine.analyze

    async def analyze_recorded(url: str, **kwargs: Any) -> Any:
        _url.set(url)  # each URL runs in its own task, so this stays with this URL's calls
        return await analyze(url, **kwargs)

    setattr(engine, "analyze", analyze_recorded)  # noqa: B010
    setattr(http, "request", _recorded(recording, "http", http.request))  # noqa: B010
    setattr(http, "fetch_page", _recorded(recording, "page", http.fetch_page))  # noqa: B010
    setattr(dns, "query", _recorded(recording, "dns", dns.query))  # noqa: B010
    owners: dict[int, str] = {}  # id(signals) of a key waiting for a bulk query -> its URL
    for provider in engine.plan.providers:
        depth = engine.plan.depth[provider.name]
        original = provider.collect

        async def collect(ctx: Any, signals: Any, _original: Any = original, _depth: int = depth,
                          _name: str = provider.name) -> Any:
            _invocation.set(_Invocation(_name, _depth, (_url.get(),)))
            return await _original(ctx, signals)

        setattr(provider, "collect", collect)  # noqa: B010
        batcher = engine.calls.batcher(provider.name)
        if batcher is None:
            continue
        submit = batcher.submit

        async def submit_recorded(signals: dict[str, Any], *rest: Any, _submit: Any = submit) -> Any:
            owners[id(signals)] = _url.get()  # the signals stay alive (and their id theirs) while they wait
            return await _submit(signals, *rest)  # the rest as the engine passes it (key, deadline, priority...)

        setattr(batcher, "submit", submit_recorded)  # noqa: B010
        original_many = provider.collect_many

        async def collect_many(ctx: Any, batch: Sequence[Any], _original: Any = original_many, _depth: int = depth,
                               _name: str = provider.name) -> Any:
            _invocation.set(_Invocation(_name, _depth, tuple(owners.get(id(s), _url.get()) for s in batch)))
            return await _original(ctx, batch)

        setattr(provider, "collect_many", collect_many)  # noqa: B010


def _recorded(recording: Recording, kind: str, method: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        invocation = _invocation.get()
        provider = invocation.provider if invocation is not None else ""
        recording.chain_for(invocation, provider).calls.append(Call(kind, args, kwargs, provider))
        return await method(*args, **kwargs)

    return wrapper
