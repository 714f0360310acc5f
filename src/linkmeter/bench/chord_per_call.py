"""The 2012 design rebuilt for `linkmeter bench --mode chord-per-call` (never imported by the product): one
Celery task per provider call doing blocking HTTP, each round of a URL a chord, prefork worker processes.

Round one is a chord of the page fetch whose callback starts round two: a chord of the other providers'
calls whose callback stores the URL's result in PostgreSQL. Answers are cached in Redis per provider and
key for the providers' own TTLs (a hit still costs its task), so the old design makes no more upstream
calls than the engine does. Started by the bench as ``celery -A linkmeter.bench.chord_per_call worker``,
configured through the LINKMETER_BENCH_CHORD_* variables below.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import psycopg
import redis
from celery import Celery, chord

from linkmeter.bench.chord_calls import CACHE_TTLS, ROUND_TWO, Answer, BlockingCalls, cache_key, facts_of, timed
from linkmeter.indicators.engagement import engagement

ENV_BROKER = "LINKMETER_BENCH_CHORD_BROKER"
ENV_BACKEND = "LINKMETER_BENCH_CHORD_BACKEND"  # Redis: chord state and task results, and the answer cache
ENV_QUEUE = "LINKMETER_BENCH_CHORD_QUEUE"
ENV_DATABASE = "LINKMETER_BENCH_CHORD_DATABASE"
ENV_PREFIX = "LINKMETER_BENCH_CHORD_PREFIX"

TABLE = """
CREATE TABLE chord_result (
    url_id integer PRIMARY KEY,
    url text NOT NULL,
    status text NOT NULL,
    signals jsonb NOT NULL,
    providers jsonb NOT NULL,
    requests integer NOT NULL,
    submitted_at double precision NOT NULL,
    finished_at double precision NOT NULL
)
"""
INSERT = """
INSERT INTO chord_result (url_id, url, status, signals, providers, requests, submitted_at, finished_at)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT (url_id) DO NOTHING
"""

app = Celery("linkmeter_chord_per_call")


def configure(environ: Mapping[str, str]) -> None:
    app.conf.update(
        broker_url=environ.get(ENV_BROKER, "amqp://guest:guest@127.0.0.1:5672//"),
        result_backend=environ.get(ENV_BACKEND, "redis://127.0.0.1:6379/0"),
        task_default_queue=environ.get(ENV_QUEUE, "linkmeter-bench-chord-per-call"),
        task_serializer="json", result_serializer="json", accept_content=["json"],
        result_expires=900,
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False,
    )


configure(os.environ)


@dataclass(slots=True)
class _ProcessState:
    """One per worker process, made after the fork: its HTTP pool, its Redis and PostgreSQL connections."""

    pid: int
    calls: BlockingCalls
    cache: redis.Redis
    prefix: str
    database: psycopg.Connection[Any] | None = None


_state: _ProcessState | None = None


def _process_state() -> _ProcessState:
    global _state
    if _state is None or _state.pid != os.getpid():
        cache = redis.Redis.from_url(os.environ.get(ENV_BACKEND, "redis://127.0.0.1:6379/0"))
        _state = _ProcessState(os.getpid(), BlockingCalls(os.environ), cache,
                               os.environ.get(ENV_PREFIX, "linkmeter-bench-chord:"))
    return _state


def _call(name: str, url: str, facts: dict[str, Any]) -> dict[str, Any]:
    state = _process_state()
    key = f"{state.prefix}{name}:{cache_key(name, url, facts)}"
    cached = state.cache.get(key)
    if cached is not None:
        return Answer("cached", json.loads(cached), 0, 0.0).as_dict()
    answer = timed(lambda: state.calls.page(url)) if name == "page" else timed(lambda: state.calls.calls[name](facts))
    if answer.status == "ok":
        state.cache.set(key, json.dumps(answer.signals), ex=CACHE_TTLS[name])
    return answer.as_dict()


@app.task(name="chord_per_call.page")
def page(url: str) -> dict[str, Any]:
    """Round one: the page fetch."""
    return _call("page", url, {})


@app.task(name="chord_per_call.provider")
def provider(name: str, url: str, facts: dict[str, Any]) -> dict[str, Any]:
    """Round two: one provider's call."""
    return _call(name, url, facts)


@app.task(name="chord_per_call.round_two")
def round_two(results: list[dict[str, Any]], url_id: int, url: str, submitted_at: float) -> None:
    """Round one's callback: start round two as a chord of one task per provider."""
    page_answer = results[0]
    facts = facts_of(url, page_answer["signals"])
    chord(provider.s(name, url, facts) for name in ROUND_TWO)(store.s(url_id, url, page_answer, submitted_at))


@app.task(name="chord_per_call.store")
def store(results: list[dict[str, Any]], url_id: int, url: str, page_answer: dict[str, Any],
          submitted_at: float) -> None:
    """Round two's callback: the URL's result, in PostgreSQL."""
    answers = {"page": page_answer, **dict(zip(ROUND_TWO, results, strict=True))}
    signals: dict[str, Any] = {}
    for answer in answers.values():
        signals.update(answer["signals"])
    signals.update(engagement(signals) or {})
    succeeded = sum(1 for answer in answers.values() if answer["status"] in ("ok", "cached"))
    status = "done" if succeeded == len(answers) else "partial" if succeeded else "failed"
    providers = {name: {k: v for k, v in answer.items() if k != "signals"} for name, answer in answers.items()}
    state = _process_state()
    if state.database is None or state.database.closed:
        state.database = psycopg.connect(os.environ[ENV_DATABASE], autocommit=True)
    state.database.execute(INSERT, (url_id, url, status, json.dumps(signals), json.dumps(providers),
                                    sum(answer["requests"] for answer in answers.values()), submitted_at,
                                    time.time()))


def submit(url_id: int, url: str) -> None:
    """What the 2012 web view did for each submitted URL: start its first round."""
    chord([page.s(url)])(round_two.s(url_id, url, time.time()))

