"""The one-key path of a provider that asks its API for many keys at once: a batch of one."""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Sequence

from linkmeter.engine.provider import CallContext, Collected, Provider, ProviderError, Signals


class BatchedProvider(Provider):
    """A provider whose ``collect`` is its ``collect_many`` of one call: the same request and the same checks
    of the answer, the item's own ProviderError raised (a provider with another one-key path, such as
    Facebook's ``?id=``, overrides ``collect`` instead)."""

    async def collect(self, ctx: CallContext, signals: Signals) -> Collected:
        outcome = (await self.collect_many(ctx, [signals]))[0]
        if isinstance(outcome, ProviderError):
            raise outcome
        return outcome

    @abstractmethod
    async def collect_many(self, ctx: CallContext, batch: Sequence[Signals]) -> Sequence[Collected | ProviderError]:
        """One request for the batch (see ``Provider.collect_many``)."""
