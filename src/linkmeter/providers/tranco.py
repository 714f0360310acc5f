"""Tranco: a domain's rank in the daily top-1M list, looked up in a local copy that is refreshed once a day."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

from linkmeter.engine.provider import (
    CallContext,
    Collected,
    Policy,
    Provider,
    ProviderConfig,
    ProviderError,
    Signals,
    SignalSpec,
)
from linkmeter.engine.urls import registered_domain
from linkmeter.providers._tranco_list import (
    ListInfo,
    RankList,
    build_list,
    csv_entries,
    file_identity,
    host_lock,
    list_path,
    open_list,
    remove_stale,
)

log = logging.getLogger(__name__)

REFRESH_AFTER = 86400.0  # Tranco publishes one list a day
RETRY_AFTER_FAILURE = 600.0  # a failed refresh is tried again this long after (60 s while there is no list)
RECHECK_EVERY = 60.0  # how often a process looks for a list another process of the host wrote (1 s without one)
DOWNLOAD_TIMEOUT = 300.0  # a background refresh belongs to no call, so it bounds itself
LIST_WAIT = 5.0  # how long a call waits for the first list (another process may hold the refresh a long time)
API_INTERVAL = 1.0  # REFERENCE §8c (UNVERIFIED): the rank API allows about one request a second
MAX_DOWNLOAD_BYTES = 64 * 1024 * 1024  # the zip is ~7 MB, the CSV ~22 MB
STALE_FILES = 2 * 86400.0  # another source's list file (a demo's emulator) untouched this long is deleted
LIST_ID = re.compile(r"^[A-Za-z0-9]{1,16}$")


class TrancoProvider(Provider):
    """A lookup in the local list costs no request. The list (``download_daily/<id>`` of yesterday's list id,
    as the official tranco package does) is kept as a file under the data directory that every process of the
    host shares (``tranco_list``), refreshed in the background once a day; a failed refresh keeps the old list.
    While a process has no list yet, one call a second asks the rank API and the others wait for the list."""

    name = "tranco"
    order = 82
    group = "authority"
    published_limits = "the list: no key, a new one every day; the rank API: about one request a second (UNVERIFIED)"
    needs = ("domain",)
    wants = ("page.final_domain",)
    provides = {
        "tranco.rank": SignalSpec(int, "rank in the Tranco top million (1 = most popular; None: not ranked)", "rank"),
        "tranco.ranked": SignalSpec(bool, "the domain is in the Tranco top million"),
        "tranco.list_date": SignalSpec(str, "date of the Tranco list the answer comes from (YYYY-MM-DD)"),
    }
    # No rate limit: list lookups are local, and the rank API fallback keeps its own pace (API_INTERVAL). The
    # timeout covers a first start's wait for the list. List answers are never cached (the list is the
    # cache, so Collected(ttl=0)); a rank API answer is, for a day.
    policy = Policy(timeout=30.0, retries=2, cache_ttl=86400.0)
    default_base_url = "https://tranco-list.eu"

    def __init__(
        self,
        config: ProviderConfig | None = None,
        *,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(config)
        self._clock, self._monotonic = clock, monotonic
        self._list: RankList | None = None
        self._recheck_at = float("-inf")
        self._retry_at = float("-inf")
        self._api_free_at = float("-inf")
        self._refresh: asyncio.Task[None] | None = None
        self._failure: str | None = None

    def key(self, signals: Signals) -> str:
        name = str(signals.get("page.final_domain") or signals["domain"])
        return registered_domain(name.strip().rstrip(".").lower())

    async def collect(self, ctx: CallContext, signals: Signals) -> Collected:
        domain = self.key(signals)
        ranks = self.current(ctx)
        if ranks is not None:
            return self._from_list(ranks, domain)
        now = self._monotonic()
        if now >= self._api_free_at:
            self._api_free_at = now + API_INTERVAL
            return await self._from_api(ctx, domain)
        refresh = self._refresh
        if refresh is not None and not refresh.done():
            # The first list is on its way: this call waits a while for it rather than for the rank API.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(LIST_WAIT):
                    await asyncio.shield(refresh)
            ranks = self.current(ctx)
            if ranks is not None:
                return self._from_list(ranks, domain)
            if not refresh.done():
                raise ProviderError("the Tranco list is still being fetched, and the rank API takes one request a "
                                    "second", retryable=True, rate_limited=True,
                                    retry_after=max(0.1, self._api_free_at - self._monotonic()))
        wait = max(0.1, self._api_free_at - self._monotonic())
        if self._failure:  # the list's upstream failed: an error (retried after the wait), not our own pace
            raise ProviderError(f"no Tranco list ({self._failure}), and the rank API takes one request a second",
                                retryable=True, retry_after=wait)
        # Only the rank API answers (no directory for the list): one call a second, paced like a 429's pause.
        raise ProviderError("no Tranco list is kept (no data directory), and the rank API takes one request a "
                            "second", retryable=True, rate_limited=True, retry_after=wait)

    def current(self, ctx: CallContext) -> RankList | None:
        """The list this process reads (None before the first), reopened when another process replaced the
        file; starts a background refresh when there is none or it is a day old."""
        path = self.list_file(ctx.config)
        if path is None:
            return None
        now = self._monotonic()
        if now >= self._recheck_at:
            self._recheck_at = now + (RECHECK_EVERY if self._list else 1.0)
            self._reopen(path)
        ranks = self._list
        if ((ranks is None or self._stale(ranks)) and now >= self._retry_at
                and (self._refresh is None or self._refresh.done())):
            self._refresh = asyncio.get_running_loop().create_task(self._refresh_list(ctx, path),
                                                                   name="tranco-list-refresh")
        return ranks

    async def aclose(self) -> None:
        """Cancel a refresh in progress, so that it lets go of the host's lock file now."""
        refresh = self._refresh
        if refresh is not None and not refresh.done():
            refresh.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await refresh

    async def wait_refresh(self) -> None:
        """Until the refresh in progress (if any) has ended, successfully or not."""
        if self._refresh is not None:
            await asyncio.shield(self._refresh)

    def list_file(self, config: ProviderConfig) -> Path | None:
        """``LINKMETER_TRANCO_OPT_DIR``, else ``<LINKMETER_DATA_DIR>/tranco``: the file of this base URL's list;
        None without a directory (then only the rank API answers)."""
        directory = config.extra.get("dir") or (str(Path(config.data_dir) / "tranco") if config.data_dir else None)
        return list_path(Path(directory), config.base_url) if directory else None

    def _from_list(self, ranks: RankList, domain: str) -> Collected:
        rank = ranks.rank(domain)
        raw: dict[str, Any] = {"source": "list", "list_id": ranks.info.list_id, "list_date": ranks.info.list_date}
        if self._failure:
            raw["note"] = f"refreshing the list failed ({self._failure}): this is the list of {ranks.info.list_date}"
        signals = {"tranco.rank": rank, "tranco.ranked": rank is not None, "tranco.list_date": ranks.info.list_date}
        return Collected(signals=signals, raw=raw, ttl=0)

    async def _from_api(self, ctx: CallContext, domain: str) -> Collected:
        url = f"{ctx.config.base_url.rstrip('/')}/api/ranks/domain/{quote(domain, safe='')}"
        response = await ctx.http.request("GET", url, headers={"Accept": "application/json"})
        payload = response.json()
        return Collected(signals=parse_ranks(payload), raw={"source": "rank api", "answer": payload})

    def _stale(self, ranks: RankList) -> bool:
        return self._clock() - ranks.info.fetched_at >= REFRESH_AFTER

    def _reopen(self, path: Path) -> None:
        identity = file_identity(path)
        if identity is None or (self._list is not None and self._list.identity == identity):
            return
        fresh = open_list(path)
        if fresh is None:
            return
        old, self._list = self._list, fresh
        if old is not None:
            old.close()  # lookups never await, so none is using it

    async def _refresh_list(self, ctx: CallContext, path: Path) -> None:
        try:
            async with asyncio.timeout(DOWNLOAD_TIMEOUT), host_lock(path.parent):
                self._reopen(path)  # another process of the host may have refreshed it while we waited
                if self._list is not None and not self._stale(self._list):
                    self._failure = None
                    return
                info, body = await download(ctx, self._clock())
                size = await asyncio.to_thread(build_list, path, csv_entries(body), info)
                self._reopen(path)
                remove_stale(path.parent, path, STALE_FILES, self._clock())
            self._failure = None
            log.info("Tranco list %s of %s: %d domains in %s", info.list_id, info.list_date, size, path)
        except Exception as exc:  # any failure keeps the old list, and is said so
            self._failure = f"{type(exc).__name__}: {exc}" if not isinstance(exc, ProviderError) else exc.message
            self._retry_at = self._monotonic() + (RETRY_AFTER_FAILURE if self._list else 60.0)
            kept = (f"keeping the list of {self._list.info.list_date}" if self._list
                    else "no list yet: the rank API answers, one request a second")
            log.warning("refreshing the Tranco list failed (%s); %s", self._failure, kept)


async def download(ctx: CallContext, now: float) -> tuple[ListInfo, bytes]:
    """Yesterday's list (the day before if that has no id yet): its id from ``daily_list_id``, then the zip
    (``download_daily/<id>``), or the CSV (``download/<id>/1000000``) when the zip is refused (403)."""
    base = ctx.config.base_url.rstrip("/")
    today = datetime.fromtimestamp(now, UTC).date()
    answers = []
    for back in (1, 2):
        date = (today - timedelta(days=back)).isoformat()
        response = await ctx.http.request("GET", base + "/daily_list_id", params={"date": date},
                                          accept=(200, 400, 404))
        list_id = response.text().strip()
        if response.status != 200 or not LIST_ID.match(list_id):
            answers.append(f"{date}: HTTP {response.status} {list_id[:40]!r}")
            continue
        response = await ctx.http.request("GET", f"{base}/download_daily/{list_id}", accept=(200, 403),
                                          max_bytes=MAX_DOWNLOAD_BYTES)
        if response.status == 403:
            response = await ctx.http.request("GET", f"{base}/download/{list_id}/1000000",
                                              max_bytes=MAX_DOWNLOAD_BYTES)
        return ListInfo(list_id=list_id, list_date=date, fetched_at=now, source=base), response.body
    raise ProviderError(f"Tranco gave no list id ({'; '.join(answers)})")


def parse_ranks(payload: Any) -> dict[str, Any]:
    """The rank API's answer: its newest rank; an empty ``ranks`` means not ranked."""
    if not isinstance(payload, dict) or not isinstance(payload.get("ranks"), list):
        raise ProviderError("unexpected Tranco rank API answer: no 'ranks' list")
    entries = [(str(item.get("date", "")), _rank(item.get("rank"))) for item in payload["ranks"]
               if isinstance(item, dict)]
    dated = [(date, rank) for date, rank in entries if rank is not None]
    if not dated:
        return {"tranco.rank": None, "tranco.ranked": False, "tranco.list_date": None}
    date, rank = max(dated, key=lambda entry: entry[0])
    return {"tranco.rank": rank, "tranco.ranked": True, "tranco.list_date": date or None}


def _rank(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if value > 0 else None
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip()) or None
    return None
