"""Batched writes of finished analyses (the runner's hot path), as plain parameterised statements.

bulk_create and bulk_update build and prepare every value through the ORM's expression machinery, which
cost several times more CPU than the writes themselves and, in the embedded mode, competes with the event
loop for the interpreter. Values are still adapted by the model fields and the database backend, so this
works on SQLite and PostgreSQL alike. Call inside a transaction.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import orjson
from django.db import connection, models
from django.db.models.constants import OnConflict

from linkmeter.engine.results import UrlResult
from linkmeter.web.links.models import Analysis, ProviderResult

MESSAGE_LIMIT = 2000
RESULT_FIELDS = ("analysis", "provider", "status", "latency_ms", "attempts", "message", "signals", "raw",
                 "created_at")
OUTCOME_FIELDS = ("status", "signals", "elapsed_ms", "finished_at")


def insert_provider_results(outcomes: Sequence[tuple[int, UrlResult]], now: datetime) -> None:
    """Every provider's result of these analyses; a result already stored (same analysis and provider)
    is left as it is."""
    fields = _fields(ProviderResult, RESULT_FIELDS)
    quote = connection.ops.quote_name
    suffix = connection.ops.on_conflict_suffix_sql(fields, OnConflict.IGNORE, [], []) or ""
    sql = (f"{connection.ops.insert_statement(on_conflict=OnConflict.IGNORE)} "
           f"{quote(ProviderResult._meta.db_table)} ({', '.join(quote(_column(f)) for f in fields)}) "
           f"VALUES ({', '.join(['%s'] * len(fields))}) {suffix}")
    created = fields[-1].get_db_prep_save(now, connection)
    rows = [
        (pk, name, str(call.status), call.latency_ms, call.attempts, call.message[:MESSAGE_LIMIT],
         json_value(call.signals), json_value(call.raw), created)
        for pk, result in outcomes
        for name, call in result.providers.items()
    ]
    if rows:
        with connection.cursor() as cursor:
            cursor.executemany(sql, rows)


def update_analyses(outcomes: Sequence[tuple[int, UrlResult]], now: datetime) -> None:
    """Status, signals, elapsed time and finish time of these analyses: one UPDATE each, sent as a batch."""
    fields = _fields(Analysis, OUTCOME_FIELDS)
    quote = connection.ops.quote_name
    assignments = ", ".join(f"{quote(_column(f))} = %s" for f in fields)
    pk_column = _column(_concrete(Analysis._meta.pk))
    sql = f"UPDATE {quote(Analysis._meta.db_table)} SET {assignments} WHERE {quote(pk_column)} = %s"
    status, _, elapsed, finished = fields
    finished_at = finished.get_db_prep_save(now, connection)
    rows = [
        (status.get_db_prep_save(str(result.status), connection), json_value(result.signals),
         elapsed.get_db_prep_save(result.elapsed_ms, connection), finished_at, pk)
        for pk, result in outcomes
    ]
    if rows:
        with connection.cursor() as cursor:
            cursor.executemany(sql, rows)


def json_value(value: Any) -> Any:
    """A JSON column's parameter: tuples become lists, sets lists, odd objects their text; None is NULL."""
    if value is None:
        return None
    try:
        data = orjson.dumps(value, default=_lenient, option=orjson.OPT_NON_STR_KEYS)
    except (TypeError, ValueError):  # keys JSON cannot take, integers over 64 bits, ...: the slow, sure way
        data = json.dumps(jsonable(value)).encode()
    if connection.vendor == "postgresql":
        from psycopg.types.json import Jsonb

        return Jsonb(data, dumps=_as_is)  # a jsonb parameter of the bytes encoded above, not encoded again
    return data.decode()  # what the base backend's adapt_json_value returns, without encoding twice


def _as_is(data: bytes) -> bytes:
    return data


def jsonable(value: Any) -> Any:
    """``value`` as plain JSON data (string keys, lists, text for odd objects)."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [jsonable(v) for v in value]
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)


def _lenient(o: Any) -> Any:
    """What orjson cannot encode itself: sets as lists, anything else as its text."""
    return list(o) if isinstance(o, set | frozenset) else str(o)


def _fields(model: type[models.Model], names: Sequence[str]) -> list[models.Field[Any, Any]]:
    return [_concrete(model._meta.get_field(name)) for name in names]


def _concrete(field: Any) -> models.Field[Any, Any]:
    assert isinstance(field, models.Field)
    return field


def _column(field: models.Field[Any, Any]) -> str:
    assert field.column is not None
    return field.column
