"""Request and response shapes of the REST API (they are also its OpenAPI description)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from ninja import Field, Schema
from pydantic import ConfigDict

from linkmeter.web.links.selectors.progress import BatchStatus

if TYPE_CHECKING:
    from linkmeter.web.jobs.health import ProviderCache
    from linkmeter.web.links.selectors.health import ProviderHealth


class ErrorOut(Schema):
    code: str = Field(description="machine-readable, e.g. invalid_request, no_valid_urls, not_found")
    message: str
    details: Any = None


class SubmitIn(Schema):
    model_config = ConfigDict(extra="forbid")

    urls: list[str] = Field(description="URLs to analyse; invalid ones are listed with their index, the rest run")
    providers: list[str] | None = Field(None, description="provider names (and those they need run too); "
                                        "omitted or empty = the default set. GET /api/v1/providers lists them, "
                                        "with `in_default_set`; an unknown name is a 422 `unknown_provider`")
    fresh: bool = Field(False, description="analyse again even when a young enough analysis exists")
    name: str = Field("", description="a name for the batch")
    max_age: float | None = Field(None, ge=0, description="reuse analyses younger than this many seconds "
                                                          "(default: the shortest cache TTL of the providers)")
    callback_url: str | None = Field(None, description="http(s) URL POSTed a signed JSON summary when the batch "
                                                       "closes (Celery mode; see docs/scale-out.md)")


class InvalidItemOut(Schema):
    index: int
    input: str
    code: str
    message: str


class SubmitLinksOut(Schema):
    batch: str
    results: str


class DeferredOut(Schema):
    since: str = Field(description="when the cell was deferred (its call ended rate_limited or circuit_open)")
    tries: int = Field(description="background tries so far")
    estimate: str | None = Field(description="when it will likely be asked again (its place in the provider's "
                                             "queue at the provider's rate)")


class ProviderResultOut(Schema):
    status: str
    latency_ms: float
    attempts: int
    message: str
    signals: dict[str, Any]
    raw: Any = Field(None, description="the provider's raw response (only with ?raw=true)")
    deferred: DeferredOut | None = Field(None, description="set while the cell waits to be filled in the "
                                                           "background when the provider's budget allows")
    refilled_at: str | None = Field(None, description="when a background try settled the cell")


class AnalysisOut(Schema):
    analysis_id: int
    link_id: int
    url: str
    status: str = Field(description="queued, running, done, partial or failed")
    signals: dict[str, Any] = Field(description="every signal produced (empty until the analysis is final)")
    queued_at: str
    started_at: str | None
    finished_at: str | None
    elapsed_ms: float | None
    error: str
    providers_requested: list[str]
    providers: dict[str, ProviderResultOut]
    deferred: dict[str, str] = Field(default_factory=dict, description="provider -> estimate, for each cell "
                                                                        "waiting to be filled in the background")


class SubmitAcceptedOut(Schema):
    batch_id: int
    analysis_ids: list[int] = Field(description="one per valid URL, in input order (duplicates share one)")
    reused: int = Field(description="how many URLs were answered by an earlier analysis")
    queued: int = Field(description="how many new analyses were queued")
    invalid: list[InvalidItemOut]
    links: SubmitLinksOut


class SubmitDoneOut(SubmitAcceptedOut):
    results: list[AnalysisOut] = Field(description="the analysis of each valid URL, in input order")


class BatchLinksOut(Schema):
    results: str


class CallbackOut(Schema):
    url: str
    status: str = Field(description="pending (batch still running), sending (retrying), delivered or failed")
    attempts: int
    last_error: str | None
    sent_at: str | None = Field(description="when the receiver accepted it")


class BatchOut(Schema):
    id: int
    name: str
    status: BatchStatus = Field(description="queued (no analysis started), running, or finished (every "
                                            "analysis ended); poll until finished")
    total: int
    counts: dict[str, int] = Field(description="analyses by status")
    finished: int
    progress: float = Field(description="0..1")
    eta_seconds: float | None
    created_at: str
    finished_at: str | None
    invalid: list[InvalidItemOut]
    callback: CallbackOut | None = Field(None, description="the webhook's outcome, when callback_url was given")
    providers: list[str] = Field(description="the providers it runs (and those they need): the ones the "
                                             "submission named, else the default set")
    default_set: bool = Field(description="true when the submission named no provider")
    deferred: int = Field(0, description="provider cells waiting to be filled in the background (their analyses "
                                         "are final; each is updated in place when filled)")
    deferred_estimate: str | None = Field(None, description="when the last of them will likely be asked again")
    links: BatchLinksOut


class HistoryItemOut(Schema):
    analysis_id: int
    status: str
    finished_at: str | None


class HistorySummaryOut(Schema):
    count: int
    first_at: str | None
    last_at: str | None
    recent: list[HistoryItemOut] = Field(description="the newest final analyses, newest first")


class LinkLinksOut(Schema):
    history: str
    feedback: str


class LinkOut(Schema):
    id: int
    url: str
    domain: str
    first_seen: str
    latest_analysis: AnalysisOut | None
    history: HistorySummaryOut
    links: LinkLinksOut


class HistoryEntryOut(Schema):
    analysis_id: int
    status: str
    queued_at: str
    finished_at: str | None
    elapsed_ms: float | None
    signals: dict[str, Any]


class SeriesPointOut(Schema):
    t: str
    v: int | float


class LinkHistoryOut(Schema):
    link_id: int
    url: str
    analyses: list[HistoryEntryOut] = Field(description="final analyses, oldest first")
    series: dict[str, list[SeriesPointOut]] = Field(description="per numeric signal, its values over time")


class FeedbackIn(Schema):
    model_config = ConfigDict(extra="forbid")

    label: str = Field(description="spam or ham")


class FeedbackOut(Schema):
    id: int
    link_id: int
    analysis_id: int | None
    label: str
    created_at: str


class ProviderCacheOut(Schema):
    ttl_seconds: float = Field(description="how long a result is cached (the provider's policy); 0 = not cached")
    store: str = Field(description="where the cache lives: redis (shared by every process using the same Redis), "
                                   "memory (the serving process's own engine) or unknown (no engine runs in "
                                   "the serving process and no Redis is configured)")
    entries: int | None = Field(description="entries cached now (counted at most every 30 s); null when it "
                                            "cannot tell (e.g. Redis unavailable)")
    entries_more: bool = Field(description="true when counting stopped at its limit: more than `entries` entries")

    @staticmethod
    def resolve_ttl_seconds(cache: ProviderCache) -> float:
        return cache.ttl

    @staticmethod
    def resolve_entries_more(cache: ProviderCache) -> bool:
        return cache.more


ProviderGroup = Literal["page", "domain", "threat", "authority", "social", "archive", "indicator"]


class ProviderBudgetOut(Schema):
    period: Literal["hour", "day"] = Field(description="a calendar hour or day (UTC)")
    limit: int = Field(description="requests allowed in it (LINKMETER_<NAME>_PER_HOUR / _PER_DAY, else the "
                                   "provider's rate limit's worth of the period)")
    used: int | None = Field(description="requests made in the current one; null when this process cannot tell")
    remaining: int | None
    resets_at: str = Field(description="when the budget refills (the next period's start)")
    store: str = Field(description="redis (shared by every process), memory (this process) or unknown")

    @staticmethod
    def resolve_resets_at(budget: Any) -> str:
        return str(budget.resets_at.isoformat())


class ProviderHealthOut(Schema):
    name: str
    group: ProviderGroup = Field(description="what it tells about a link; the link page groups its cards by it")
    in_default_set: bool = Field(description="runs when a submission names no provider; the others (slow, or "
                                             "with a small quota) run only when named in `providers`")
    keyed: bool = Field(description="needs an API key to run (without it: disabled, see `key_variable`)")
    key: Literal["required", "optional", "none"] = Field(
        description="required: disabled without a key; optional: runs without one, does more with one; none")
    key_variable: str | None = Field(description="the setting that holds its key, e.g. "
                                                 "LINKMETER_SAFEBROWSING_API_KEY; null when it takes none")
    key_set: bool = Field(description="that setting is set (the key itself is never shown)")
    key_url: str | None = Field(description="where to get a key")
    published_limits: str = Field(description="the upstream's own limits, in words (UNVERIFIED where unsure)")
    docs: str = Field(description="its section of linkmeter's documentation (signals, limits, edge cases)")
    enabled: bool
    disabled_reason: str | None = Field(description="why it does not run, naming the setting to change")
    breaker: str = Field(description="closed, open, half_open or unknown")
    calls: int
    success_rate: float | None
    p50_ms: float | None
    p95_ms: float | None
    statuses: dict[str, int]
    last_error: str | None
    last_error_at: str | None
    hit_ratio: float | None = Field(description="cache hits over the window: cached / (ok + cached); null when "
                                                "neither happened")
    cache: ProviderCacheOut = Field(description="the provider's result cache: policy, where it lives, its entries")
    budgets: list[ProviderBudgetOut] = Field(description="its budgets per hour and day (empty: none): what is "
                                                         "left and when it refills; docs/providers.md, \"Budgets\"")
    deferred: int = Field(description="its cells waiting to be filled in the background when the budget allows")

    # Read from a ProviderHealth (the selector's record): ratios to 4 decimals, the time as ISO 8601.
    @staticmethod
    def resolve_keyed(health: ProviderHealth) -> bool:
        return health.key == "required"

    @staticmethod
    def resolve_success_rate(health: ProviderHealth) -> float | None:
        return None if health.success_rate is None else round(health.success_rate, 4)

    @staticmethod
    def resolve_hit_ratio(health: ProviderHealth) -> float | None:
        return None if health.hit_ratio is None else round(health.hit_ratio, 4)

    @staticmethod
    def resolve_last_error_at(health: ProviderHealth) -> str | None:
        return health.last_error_at.isoformat() if health.last_error_at else None


class ProvidersOut(Schema):
    window_minutes: int
    providers: list[ProviderHealthOut]


class UsageOut(Schema):
    account: dict[str, Any] | None = Field(description="id and username; null in local mode without a login")
    plan: dict[str, Any] = Field(description="code, name, priority, max_batch, max_in_flight, providers")
    quotas: list[dict[str, Any]] = Field(description="per period (day, month; calendar UTC): limit (null: none), "
                                                     "used, remaining, resets_at")
    rate_limits: list[dict[str, Any]] = Field(description="per window: limit, window_seconds, remaining, resets_in")
    keys: dict[str, list[dict[str, Any]]] = Field(description="per key (key_id null: no key), today and this "
                                                              "month: urls, submissions; sums to the account's")
    history: list[dict[str, Any]] = Field(description="the last 30 days, oldest first: day, urls, submissions")


class LinkEntryOut(Schema):
    id: int = Field(description="the link's id")
    url: str
    domain: str
    title: str = Field(description="page.title as scraped: untrusted text")
    status: str = Field(description="the status of the analysis shown: the newest final one, else the newest")
    analysed_at: str = Field(description="when it finished (when it was queued while it has not)")
    analysis_id: int
    signals: dict[str, Any]
    providers: dict[str, str] = Field(description="each provider's call status")


class LinkListOut(Schema):
    items: list[LinkEntryOut]
    next_cursor: str | None = Field(description="pass as `cursor` with the same filters and sort for the next "
                                                "page; null on the last page")


class BatchListItemOut(Schema):
    id: int
    name: str
    source: str
    status: BatchStatus
    total: int
    counts: dict[str, int]
    finished: int
    progress: float
    created_at: str
    finished_at: str | None
    invalid_count: int
    callback: CallbackOut | None = None
    providers: list[str]
    default_set: bool


class BatchListOut(Schema):
    items: list[BatchListItemOut]
    next_cursor: str | None
