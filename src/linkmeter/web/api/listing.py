"""What the links and batches lists share: search errors as 422s, and streamed exports of every matching row."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from typing import Any

from asgiref.sync import sync_to_async
from django.http import StreamingHttpResponse

from linkmeter.web.api.errors import ApiError
from linkmeter.web.api.exports import MEDIA_TYPES, Row, encode
from linkmeter.web.links.selectors.search import SearchError


def search_error(exc: SearchError) -> ApiError:
    return ApiError(422, exc.code, exc.message, exc.details)


def check_format(fmt: str) -> None:
    if fmt not in MEDIA_TYPES:
        raise ApiError(422, "invalid_format", f"format must be one of {', '.join(MEDIA_TYPES)}",
                       {"allowed": list(MEDIA_TYPES), "given": fmt})


def _next(chunks: Iterator[list[Row]]) -> list[Row]:
    return next(chunks, [])


async def _async_chunks(chunks: Iterator[list[Row]]) -> AsyncIterator[list[Row]]:
    """Each chunk read in a worker thread (a keyset page of its own), so the event loop never waits on the
    database and only one chunk is held at a time."""
    while chunk := await sync_to_async(_next)(chunks):
        yield chunk


def streamed(chunks: Iterator[list[Row]], fmt: str, *, filename: str,
             columns: Sequence[str], cells: Callable[[Row], Sequence[Any]]) -> StreamingHttpResponse:
    response = StreamingHttpResponse(encode(_async_chunks(chunks), fmt, columns=columns, cells=cells),
                                     content_type=MEDIA_TYPES[fmt])
    response["Content-Disposition"] = f'attachment; filename="{filename}.{fmt}"'
    response["Cache-Control"] = "no-store"
    return response
