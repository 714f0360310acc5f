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
    if connection.vendor == "postgresql" and _insert_results_as_one_document(outcomes, now):
        return
    fields = _fields(ProviderResult, RESULT_FIELDS)
    quote = connection.ops.quote_name
    suffix = connection.ops.on_conflict_suffix_sql(fields, OnConflict.IGNORE, [], []) or ""
    sql = (f"{connection.ops.insert_statement(on_conflict=OnConflict.IGNORE)} "
           f"{quote(ProviderResult._meta.db_table)} ({', '.join(quote(_column(f)) for f in fields)}) "
           f"VALUES ({', '.join(['%s'] * len(fields))}) {suffix}")
    created = fields[-1].get_db_prep_save(now, connection)
    rows = [
        (pk, name, str(call.status), call.latency_ms, call.attempts, _text(call.message),
         json_value(call.signals), json_value(call.raw), created)
        for pk, result in outcomes
        for name, call in result.providers.items()
    ]
    if rows:
        with connection.cursor() as cursor:
            cursor.executemany(sql, rows)


def update_analyses(outcomes: Sequence[tuple[int, UrlResult]], now: datetime) -> None:
    """Status, signals, elapsed time and finish time of these analyses: one UPDATE each, sent as a batch."""
    if connection.vendor == "postgresql" and _update_analyses_as_one_document(outcomes, now):
        return
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


# PostgreSQL: the rows go as one jsonb document that jsonb_to_recordset() unpacks, one statement and one
# parameter encoded in C (orjson), instead of nine parameters adapted one by one in Python per row: that
# adaptation was about half of a worker's database CPU. Types as the columns have them.
_RESULT_RECORD = ("analysis_id bigint, provider text, status text, latency_ms double precision, attempts integer, "
                  "message text, signals jsonb, raw jsonb")
_OUTCOME_RECORD = "id bigint, status text, signals jsonb, elapsed_ms double precision"


def _insert_results_as_one_document(outcomes: Sequence[tuple[int, UrlResult]], now: datetime) -> bool:
    """The PostgreSQL fast path of insert_provider_results; False (nothing written) when orjson cannot encode
    the rows as they are, for the general path to store them."""
    rows = [
        {"analysis_id": pk, "provider": name, "status": str(call.status), "latency_ms": call.latency_ms,
         "attempts": call.attempts, "message": _text(call.message), "signals": call.signals,
         "raw": call.raw}
        for pk, result in outcomes
        for name, call in result.providers.items()
    ]
    if not rows:
        return True
    document = _strict_json(rows)
    if document is None:
        return False
    fields = _fields(ProviderResult, RESULT_FIELDS)
    quote = connection.ops.quote_name
    columns = ", ".join(quote(_column(f)) for f in fields)
    selected = ", ".join(f"x.{quote(_column(f))}" for f in fields[:-1])
    sql = (f"INSERT INTO {quote(ProviderResult._meta.db_table)} ({columns}) SELECT {selected}, %s "
           f"FROM jsonb_to_recordset(%s) AS x({_RESULT_RECORD}) ON CONFLICT DO NOTHING")
    with connection.cursor() as cursor:
        cursor.execute(sql, [fields[-1].get_db_prep_save(now, connection), _jsonb(document)])
    return True


def _update_analyses_as_one_document(outcomes: Sequence[tuple[int, UrlResult]], now: datetime) -> bool:
    """The PostgreSQL fast path of update_analyses; False (nothing written) as for the results."""
    if not outcomes:
        return True
    document = _strict_json([{"id": pk, "status": str(result.status), "signals": result.signals,
                              "elapsed_ms": result.elapsed_ms} for pk, result in outcomes])
    if document is None:
        return False
    fields = _fields(Analysis, OUTCOME_FIELDS)
    quote = connection.ops.quote_name
    status, signals, elapsed, finished = (quote(_column(f)) for f in fields)
    pk_column = quote(_column(_concrete(Analysis._meta.pk)))
    sql = (f"UPDATE {quote(Analysis._meta.db_table)} AS a SET {status} = x.status, {signals} = x.signals, "
           f"{elapsed} = x.elapsed_ms, {finished} = %s FROM jsonb_to_recordset(%s) AS x({_OUTCOME_RECORD}) "
           f"WHERE a.{pk_column} = x.id")
    with connection.cursor() as cursor:
        cursor.execute(sql, [fields[-1].get_db_prep_save(now, connection), _jsonb(document)])
    return True


def _text(message: str) -> str:
    """A message for a text column: capped, and without NUL (PostgreSQL's text refuses it)."""
    return message[:MESSAGE_LIMIT].replace("\x00", "\ufffd")


def _strict_json(value: Any) -> bytes | None:
    """``value`` as JSON bytes, or None when it needs json_value()'s per-value fallback (keys JSON cannot
    take, integers over 64 bits)."""
    try:
        data = _encode(value)
        # PostgreSQL's jsonb refuses a NUL character (\\u0000) in a string, and one such answer would fail its
        # whole chunk's write: NULs become U+FFFD. The scan is cheap; re-encoding happens only on a hit.
        return _encode(_replace_nul(value)) if b"\\u0000" in data else data
    except (TypeError, ValueError):
        return None


def _encode(value: Any) -> bytes:
    return orjson.dumps(value, default=_lenient, option=orjson.OPT_NON_STR_KEYS)


def _jsonb(data: bytes) -> Any:
    from psycopg.types.json import Jsonb

    return Jsonb(data, dumps=_as_is)


def json_value(value: Any) -> Any:
    """A JSON column's parameter: tuples become lists, sets lists, odd objects their text; None is NULL."""
    if value is None:
        return None
    data = _strict_json(value)
    if data is None:  # keys JSON cannot take, integers over 64 bits, ...: the slow, sure way
        data = json.dumps(_replace_nul(jsonable(value))).encode()
    if connection.vendor == "postgresql":
        return _jsonb(data)  # a jsonb parameter of the bytes encoded above, not encoded again
    return data.decode()  # what the base backend's adapt_json_value returns, without encoding twice


def _replace_nul(value: Any) -> Any:
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd")
    if isinstance(value, dict):
        return {_replace_nul(k): _replace_nul(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_replace_nul(v) for v in value]
    return value


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
