"""Deferred cells with the real services (PostgreSQL, RabbitMQ, Redis) and separate processes: the emulator
limits ``wayback`` to 2 requests a second, 500 URLs are submitted by a pro account, and the wayback calls that
cannot get a slot before their URL's deadline end ``rate_limited``: the batch shows them deferred, with an
estimate, the beat task's refiller fills them in the background as the rate allows, and an unlimited
account's URL submitted later gets its wayback cell before the bulk batch's deferred ones are all filled.

The 500 URLs are 125 pages each reached four ways (its own URL, its ``m.`` and ``amp.`` copies, a tracking
variant): every copy's canonical URL is the page's, which keys the wayback call, so 125 upstream calls make
the 500 cells (at 2/s about a minute of wayback time; 500 distinct calls would take over four). The rate
bounds what can be filled by any moment: when the first runs of the 500 analyses end (each within the
6 s deadline, some 20 s in all), most of the 125 calls cannot have been made yet, so the batch shows deferred
cells whatever the machine's load. Only generous waits: nothing here is timed."""

from __future__ import annotations

import json
import secrets
import subprocess
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.harness import NO_PROXY, Cluster, HarnessError, cluster, linkmeter, query, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.timeout(480)]  # over the waits: a slow run fails with their story

PROVIDER = "wayback"
PAGES = 125
VARIANTS = ("https://{host}/p/{n}", "https://m.{host}/p/{n}", "https://amp.{host}/p/{n}",
            "https://{host}/p/{n}?utm_source=it")
SELECTION = ["page", PROVIDER]  # page gives the canonical URL wayback is keyed by
FILL_SECONDS = 170.0  # every cell filled within this (about 60 s of wayback calls at 2/s, on a loaded machine)
FILLED = ("ok", "cached")


@pytest.fixture
def limited(tmp_path: Path) -> Iterator[tuple[Cluster, dict[str, str]]]:
    """A cluster whose emulator holds wayback to 2/s (linkmeter paces it at that rate too); one worker and
    beat (the refiller's round every 2 s); two accounts, ``bulk`` on pro and ``paid`` on unlimited, with keys."""
    extra = {
        f"LINKMETER_{PROVIDER.upper()}_RATE": "2",
        f"LINKMETER_{PROVIDER.upper()}_BURST": "1",
        "LINKMETER_URL_DEADLINE": "6",  # so that most first calls give up waiting for their slot
        "LINKMETER_DEFER_INTERVAL": "2",
        "LINKMETER_AUTH": "required",
    }
    with cluster(tmp_path, rate_limits=(f"{PROVIDER}=2/s",), extra_env=extra) as running:
        keys = {name: account(running, name, plan) for name, plan in (("bulk", "pro"), ("paid", "unlimited"))}
        running.serve(ready_path="/api/v1/openapi.json")
        running.worker("worker1", concurrency=4)
        running.beat()
        running.wait_for_workers(1)
        yield running, keys


def account(running: Cluster, name: str, plan: str) -> str:
    """Create the account on ``plan`` and a key for it; the key."""
    env = {**running.env, "LINKMETER_NEW_PASSWORD": secrets.token_urlsafe(16)}
    for args in (("user", "create", name, "--plan", plan), ("key", "create", name, "--name", "it")):
        done = subprocess.run(linkmeter(*args), env=env, capture_output=True, text=True, timeout=120, check=False)
        if done.returncode != 0:
            raise HarnessError(f"linkmeter {' '.join(args)} failed: {done.stderr[-2000:]}")
    return done.stdout.strip()


def call(running: Cluster, key: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
    request = urllib.request.Request(running.base + path, method="POST" if body is not None else "GET",
                                     data=json.dumps(body).encode() if body is not None else None,
                                     headers={"Content-Type": "application/json", "Authorization": f"Bearer {key}"})
    with NO_PROXY.open(request, timeout=120) as response:
        answer: dict[str, Any] = json.loads(response.read())
        return answer


def bulk_urls() -> list[str]:
    run = secrets.token_hex(3)
    return [variant.format(host=f"d{n}-{run}.example.org", n=n) for n in range(PAGES) for variant in VARIANTS]


def cells(database: str, analysis_ids: list[int]) -> dict[str, int]:
    """The wayback cells of these analyses: filled (ok or cached), deferred, or otherwise."""
    rows = query(database, "SELECT status, deferred_since IS NOT NULL FROM links_providerresult "
                           "WHERE provider = %s AND analysis_id = ANY(%s)", PROVIDER, analysis_ids)
    counts = {"filled": 0, "deferred": 0, "other": 0}
    for status, deferred in rows:
        counts["filled" if status in FILLED else "deferred" if deferred else "other"] += 1
    return counts


def test_deferred_wayback_cells_are_all_filled_and_a_paid_url_goes_first(
        limited: tuple[Cluster, dict[str, str]]) -> None:
    running, keys = limited
    urls = bulk_urls()
    submitted = call(running, keys["bulk"], "/api/v1/analyses", {"urls": urls, "providers": SELECTION})
    batch_id, bulk_ids = submitted["batch_id"], submitted["analysis_ids"]
    assert len(set(bulk_ids)) == len(urls) == 500

    # Meanwhile: the analyses end (partial where wayback waits) and the batch shows the deferred cells.
    seen: dict[str, Any] = {}

    def first_runs_ended() -> bool:
        seen.update(call(running, keys["bulk"], f"/api/v1/batches/{batch_id}"))
        return bool(seen["finished"] == seen["total"])

    wait_for(first_runs_ended, FILL_SECONDS, lambda: f"the batch's analyses to end (last: {seen})",
             running.processes, pause=0.5)
    assert seen["status"] == "finished" and seen["deferred"] >= 40, seen
    assert seen["deferred_estimate"] is not None
    row = next(r for r in call_rows(running, keys["bulk"], batch_id) if r["deferred"])
    assert set(row["deferred"]) == {PROVIDER}
    detail = call(running, keys["bulk"], f"/api/v1/analyses/{row['analysis_id']}")
    assert detail["providers"][PROVIDER]["deferred"]["estimate"] is not None
    assert detail["providers"]["page"]["status"] in FILLED  # page is not asked again

    # A paid account's URL, submitted now, gets its wayback cell while the bulk batch's still wait.
    paid = call(running, keys["paid"], "/api/v1/analyses",
                {"urls": [f"https://paid-{secrets.token_hex(3)}.example.org/first"], "providers": SELECTION})
    (paid_id,) = paid["analysis_ids"]
    left_then: dict[str, int] = {}

    def paid_filled() -> bool:
        if cells(running.database, [paid_id])["filled"] != 1:
            return False
        left_then.update(cells(running.database, bulk_ids))
        return True

    wait_for(paid_filled, FILL_SECONDS, "the paid URL's wayback cell to be filled", running.processes, pause=0.2)
    assert left_then["deferred"] > 0, left_then

    # In the end every bulk wayback cell is filled, in place, and the batch says nothing is deferred.
    final: dict[str, int] = {}

    def all_filled() -> bool:
        final.update(cells(running.database, bulk_ids))
        return final["filled"] == len(bulk_ids)

    wait_for(all_filled, FILL_SECONDS, lambda: f"every wayback cell to be filled (last: {final})", running.processes,
             pause=1.0)
    progress = call(running, keys["bulk"], f"/api/v1/batches/{batch_id}")
    assert progress["deferred"] == 0 and progress["finished"] == 500, progress
    refilled = query(running.database, "SELECT count(*) FROM links_providerresult WHERE provider = %s "
                                       "AND refilled_at IS NOT NULL AND analysis_id = ANY(%s)", PROVIDER, bulk_ids)
    assert refilled[0][0] >= 100  # most were filled in the background, not by the first run
    # Each analysis was updated in place once its cell was filled: done wherever its page answered too.
    done = query(running.database, "SELECT count(*) FROM links_analysis WHERE id = ANY(%s) AND status = 'done'",
                 bulk_ids)
    page_ok = query(running.database, "SELECT count(*) FROM links_providerresult WHERE provider = 'page' "
                                      "AND status IN ('ok', 'cached') AND analysis_id = ANY(%s)", bulk_ids)
    assert done[0][0] == page_ok[0][0] >= 450, (done, page_ok)
    page_calls = query(running.database, "SELECT count(*) FROM links_providerresult WHERE provider = 'page' "
                                         "AND refilled_at IS NOT NULL")
    assert page_calls[0][0] == 0  # refilling asked no other provider again
    print(f"\nbulk wayback cells when the paid one was filled: {left_then}; in the end: {final}; "
          f"refilled in the background: {refilled[0][0]}")


def call_rows(running: Cluster, key: str, batch_id: int) -> list[dict[str, Any]]:
    request = urllib.request.Request(f"{running.base}/api/v1/batches/{batch_id}/results?format=json",
                                     headers={"Authorization": f"Bearer {key}"})
    with NO_PROXY.open(request, timeout=120) as response:
        rows: list[dict[str, Any]] = json.loads(response.read())
        return rows



