"""The provider contract: what a provider declares and how the engine calls it."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import KW_ONLY, dataclass, field
from typing import Any, ClassVar

from linkmeter.engine.errors import ProviderError as ProviderError  # providers import it from here
from linkmeter.engine.ports import DnsApi, HttpApi

Signals = Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class SignalSpec:
    """One signal a provider may produce: its Python type, unit and a one-line description.

    ``headline`` makes it a column of the results tables (the CLI table, the web UI's results), under that
    heading, in the providers' listing order and then the order of ``provides``. ``interactions`` marks a
    count of people's interactions with the URL (upvotes, comments) that the engagement indicator totals.
    """

    type: type
    description: str
    unit: str = ""
    _: KW_ONLY
    headline: str | None = None
    interactions: bool = False


@dataclass(frozen=True, slots=True)
class Policy:
    """How the engine calls one provider. Times are seconds."""

    timeout: float = 10.0
    retries: int = 2
    backoff_base: float = 0.25
    backoff_max: float = 8.0
    rate_per_sec: float | None = None
    burst: int = 1
    concurrency: int | None = None
    cache_ttl: float = 0.0
    breaker_threshold: int = 5
    breaker_cooldown: float = 30.0


@dataclass(slots=True)
class ProviderConfig:
    """Settings of one provider: from LINKMETER_<NAME>_BASE_URL / _API_KEY, or set by tests and the demo."""

    base_url: str
    api_key: str | None = None
    extra: dict[str, str] = field(default_factory=dict)
    enabled: bool = True


@dataclass(slots=True)
class Collected:
    """What a successful call returns: signals, and the raw upstream response kept for audit."""

    signals: dict[str, Any]
    raw: Any = None


@dataclass(slots=True)
class CallContext:
    """What a provider may use during a call: the shared HTTP client, the DNS client and its config."""

    http: HttpApi
    dns: DnsApi
    config: ProviderConfig


class Provider(ABC):
    """A source of signals. Subclasses declare the class attributes and implement key() and collect()."""

    name: ClassVar[str]
    needs: ClassVar[tuple[str, ...]] = ()
    wants: ClassVar[tuple[str, ...]] = ()
    provides: ClassVar[Mapping[str, SignalSpec]]
    policy: Policy = Policy()  # instance-overridable from settings
    default_base_url: ClassVar[str] = ""
    requires_key: ClassVar[bool] = False

    def __init__(self, config: ProviderConfig | None = None) -> None:
        self.config = config or ProviderConfig(base_url=self.default_base_url)

    def disabled_reason(self) -> str | None:
        """Why this provider cannot run with its settings (None when it can)."""
        if not self.config.enabled:
            return f"switched off by LINKMETER_{self.name.upper()}_ENABLED"
        if self.requires_key and not self.config.api_key:
            return f"no API key: set LINKMETER_{self.name.upper()}_API_KEY"
        return None

    @abstractmethod
    def key(self, signals: Signals) -> str:
        """What identifies the upstream call: equal keys share a cache entry and an in-flight call."""

    @abstractmethod
    async def collect(self, ctx: CallContext, signals: Signals) -> Collected:
        """Make the call and return signals. Raise ProviderError for failures the engine should see."""
