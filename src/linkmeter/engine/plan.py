"""The plan: a DAG of providers built from needs/wants/provides, validated before anything runs."""

from __future__ import annotations

import graphlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from linkmeter.engine.provider import Provider

ROOT_SIGNALS = frozenset({"url", "host", "domain"})


class PlanError(ValueError):
    """The providers cannot form a plan; the message names every problem found."""


@dataclass(frozen=True, slots=True)
class Plan:
    """What runs for each URL. Without a selection: every provider of the default set (``in_default_set``)
    plus the providers they need; with one: the providers named plus those they need. ``known`` keeps every
    provider the plan was built from, so a narrower or wider selection can be planned from it later."""

    providers: tuple[Provider, ...]  # in a topological order
    producer: dict[str, str]  # signal -> name of the provider that produces it
    waits_for: dict[str, frozenset[str]]  # provider -> providers it waits for (needs and wants)
    dependents: dict[str, tuple[str, ...]]  # provider -> providers waiting for it
    depth: dict[str, int]  # 1 = round one
    known: tuple[Provider, ...] = ()  # every provider given to build(), selected or not, in the order given

    @property
    def names(self) -> list[str]:
        return [p.name for p in self.providers]

    def by_name(self, name: str) -> Provider:
        for provider in self.providers:
            if provider.name == name:
                return provider
        raise KeyError(name)

    @classmethod
    def build(
        cls,
        providers: Sequence[Provider],
        *,
        select: Iterable[str] | None = None,
        roots: frozenset[str] = ROOT_SIGNALS,
    ) -> Plan:
        problems: list[str] = []
        by_name: dict[str, Provider] = {}
        for provider in providers:
            if provider.name in by_name:
                problems.append(f"duplicate provider name {provider.name!r}")
            by_name[provider.name] = provider
        producer: dict[str, str] = {}
        for provider in providers:
            for signal in provider.provides:
                if signal in roots:
                    problems.append(f"provider {provider.name!r} provides root signal {signal!r}")
                elif signal in producer and producer[signal] != provider.name:
                    problems.append(
                        f"signal {signal!r} provided by both {producer[signal]!r} and {provider.name!r}"
                    )
                else:
                    producer[signal] = provider.name
        for provider in providers:
            for signal in provider.needs:
                if signal not in roots and signal not in producer:
                    problems.append(f"provider {provider.name!r} needs unknown signal {signal!r}")
        if problems:
            raise PlanError("invalid provider plan: " + "; ".join(problems))

        if select is None:
            closure = set(_closure(by_name, producer, [n for n, p in by_name.items() if p.in_default_set]))
            chosen = [name for name in by_name if name in closure]  # in the order given, as before
        else:
            chosen = _closure(by_name, producer, select)
        graph: dict[str, set[str]] = {}
        for name in chosen:
            provider = by_name[name]
            wanted = (*provider.needs, *provider.wants)
            graph[name] = {producer[s] for s in wanted if s in producer and producer[s] in chosen}
        sorter = graphlib.TopologicalSorter(graph)
        try:
            order = list(sorter.static_order())
        except graphlib.CycleError as exc:
            cycle = " -> ".join(exc.args[1])
            raise PlanError(f"invalid provider plan: dependency cycle {cycle}") from exc
        depth: dict[str, int] = {}
        for name in order:
            depth[name] = 1 + max((depth[d] for d in graph[name]), default=0)
        dependents: dict[str, list[str]] = {name: [] for name in order}
        for name, deps in graph.items():
            for dep in deps:
                dependents[dep].append(name)
        return cls(
            providers=tuple(by_name[name] for name in order),
            producer={s: p for s, p in producer.items() if p in chosen},
            waits_for={name: frozenset(deps) for name, deps in graph.items()},
            dependents={name: tuple(sorted(deps)) for name, deps in dependents.items()},
            depth=depth,
            known=tuple(by_name.values()),
        )


def _closure(by_name: dict[str, Provider], producer: dict[str, str], select: Iterable[str]) -> list[str]:
    """The selected providers plus, transitively, the producers of what they need."""
    wanted = list(select)
    unknown = [name for name in wanted if name not in by_name]
    if unknown:
        known = ", ".join(sorted(by_name))
        raise PlanError(f"unknown provider(s): {', '.join(unknown)} (known: {known})")
    chosen: list[str] = []
    stack = list(wanted)
    while stack:
        name = stack.pop()
        if name in chosen:
            continue
        chosen.append(name)
        stack.extend(producer[s] for s in by_name[name].needs if s in producer)
    return chosen
