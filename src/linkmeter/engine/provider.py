"""The provider contract: what a provider declares and how the engine calls it."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
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
    # Bulk queries (a provider with ``max_batch`` > 1): how long the engine gathers ready calls across URLs
    # before it sends one request for them (it sends earlier when ``max_batch`` keys are waiting, or when a
    # waiting URL's deadline is nearer than the linger).
    batch_linger: float = 0.02
    # Budgets per calendar hour and day (UTC), shared by every process (engine/budgets.py): None = derived
    # from ``rate_per_sec`` (its hour's and day's worth), 0 = no budget for that period.
    per_hour: int | None = None
    per_day: int | None = None


@dataclass(slots=True)
class ProviderConfig:
    """Settings of one provider: from LINKMETER_<NAME>_BASE_URL / _API_KEY, or set by tests and the demo.
    ``data_dir`` (LINKMETER_DATA_DIR) is where a provider may keep files every process of the host shares
    (the Tranco list); None: it keeps none."""

    base_url: str
    api_key: str | None = None
    extra: dict[str, str] = field(default_factory=dict)
    enabled: bool = True
    data_dir: str | None = None


@dataclass(slots=True)
class Collected:
    """What a successful call returns: signals, and the raw upstream response kept for audit. ``ttl`` caps
    how long this result may be cached (seconds; e.g. a Safe Browsing match's ``cacheDuration``): the engine
    caches it for ``min(policy.cache_ttl, ttl)``, and not at all when ``ttl`` is 0. ``pause`` (seconds) says
    the answer is good but the upstream's allowance is spent (e.g. PhishTank's ``X-Request-Count`` reached
    ``X-Request-Limit``): the engine then pauses the provider for every caller, as after a 429."""

    signals: dict[str, Any]
    raw: Any = None
    ttl: float | None = None
    pause: float | None = None


@dataclass(slots=True)
class CallContext:
    """What a provider may use during a call: the shared HTTP client, the DNS client and its config."""

    http: HttpApi
    dns: DnsApi
    config: ProviderConfig


GROUPS = ("page", "domain", "threat", "authority", "social", "archive", "indicator")


class Provider(ABC):
    """A source of signals. Subclasses declare the class attributes and implement key() and collect().

    Besides what the engine needs (``needs``, ``wants``, ``provides``, ``policy``), a provider says how
    people see it: ``order`` (listing order: the providers page, the results tables' columns), ``group``
    (one of GROUPS: the link page shows its card with the others of its group), ``in_default_set`` (False for
    a provider that runs only when a submission names it: slow or with a small quota), ``published_limits``
    (the upstream's own limits in words) and ``key_url`` (where to get a key, for keyed providers).
    ``requires_key``: it cannot run without LINKMETER_<NAME>_API_KEY (``key_variable``); ``optional_key``: it
    runs without one and does more with one (a higher allowance, another list).

    Bulk queries: a provider whose API answers many keys in one request sets ``max_batch`` (> 1) and
    implements ``collect_many``; the engine then gathers calls that become ready across every URL in flight
    (see ``Policy.batch_linger``) and sends them together. ``collect`` stays the one-key path.
    """

    name: ClassVar[str]
    needs: ClassVar[tuple[str, ...]] = ()
    wants: ClassVar[tuple[str, ...]] = ()
    provides: ClassVar[Mapping[str, SignalSpec]]
    policy: Policy = Policy()  # instance-overridable from settings
    default_base_url: ClassVar[str] = ""
    requires_key: ClassVar[bool] = False
    optional_key: ClassVar[bool] = False
    order: ClassVar[int] = 100
    group: ClassVar[str] = "page"
    in_default_set: ClassVar[bool] = True
    published_limits: ClassVar[str] = ""
    key_url: ClassVar[str] = ""
    max_batch: ClassVar[int] = 1

    def __init__(self, config: ProviderConfig | None = None) -> None:
        self.config = config or ProviderConfig(base_url=self.default_base_url)

    @classmethod
    def key_variable(cls) -> str:
        """The setting that holds this provider's key (whether it takes one or not)."""
        return f"LINKMETER_{cls.name.upper()}_API_KEY"

    @classmethod
    def takes_key(cls) -> str:
        """``required``, ``optional`` or ``none``: what a key means to this provider."""
        return "required" if cls.requires_key else "optional" if cls.optional_key else "none"

    def disabled_reason(self) -> str | None:
        """Why this provider cannot run with its settings (None when it can)."""
        if not self.config.enabled:
            return f"switched off by LINKMETER_{self.name.upper()}_ENABLED"
        if self.requires_key and not self.config.api_key:
            return f"no API key: set LINKMETER_{self.name.upper()}_API_KEY"  # self: a name may be per instance
        return None

    @abstractmethod
    def key(self, signals: Signals) -> str:
        """What identifies the upstream call: equal keys share a cache entry and an in-flight call."""

    @abstractmethod
    async def collect(self, ctx: CallContext, signals: Signals) -> Collected:
        """Make the call and return signals. Raise ProviderError for failures the engine should see."""

    async def aclose(self) -> None:  # noqa: B027 - optional: most providers run nothing in the background
        """Stop what the provider runs in the background (a list refresh, a session); ``Engine.close`` calls it."""

    async def collect_many(self, ctx: CallContext, batch: Sequence[Signals]) -> Sequence[Collected | ProviderError]:
        """One upstream request for several calls with distinct keys (at most ``max_batch``): one outcome per
        item, in order, a ProviderError standing for that item's own failure (e.g. a per-item "not found" that
        is not an answer). Raise ProviderError when the request as a whole failed: every item fails with it
        (and is retried under the policy). Only called when ``max_batch`` > 1."""
        raise NotImplementedError(f"{self.name} declares max_batch={self.max_batch} but no collect_many")
