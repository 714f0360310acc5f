"""Bounded response bodies: streamed reads with a size cap and zip-bomb-safe gzip/deflate decoding."""

from __future__ import annotations

import zlib
from collections.abc import Mapping
from typing import Any

import aiohttp
from yarl import URL

from linkmeter.engine.errors import ProviderError

_CHUNK = 64 * 1024



class _Decoder:
    """Incremental gzip/deflate decoding that never produces more output than asked for (zip-bomb safe)."""

    def __init__(self, encoding: str) -> None:
        self._gzip = encoding in ("gzip", "x-gzip")
        self._encoding = encoding
        self._inflater: Any = None
        self._done = False

    def _start(self, first: bytes) -> Any:
        if self._gzip:
            return zlib.decompressobj(16 + zlib.MAX_WBITS)
        # "deflate" is meant to be zlib-wrapped, but some servers send a raw deflate stream.
        wrapped = first[0] & 0x0F == 8
        return zlib.decompressobj(zlib.MAX_WBITS if wrapped else -zlib.MAX_WBITS)

    def decode(self, data: bytes, limit: int) -> bytes:
        """Decode ``data``; at most ``limit`` bytes come out and input past that point is dropped."""
        out = bytearray()
        while data and not self._done and len(out) < limit:
            if self._inflater is None:
                self._inflater = self._start(data)
            try:
                out += self._inflater.decompress(data, limit - len(out))
            except zlib.error as exc:
                raise ProviderError(f"cannot decode {self._encoding} body: {exc}") from exc
            if self._inflater.eof:
                data = self._inflater.unused_data
                self._inflater = None
                # Another gzip member may follow; anything else after the stream is padding.
                self._done = not (self._gzip and data.startswith(b"\x1f\x8b"))
            else:
                data = self._inflater.unconsumed_tail
        return bytes(out)


def _decoder_for(headers: Mapping[str, str], url: URL) -> _Decoder | None:
    encoding = headers.get("Content-Encoding", "").strip().lower()
    if encoding in ("", "identity"):
        return None
    if encoding in ("gzip", "x-gzip", "deflate"):
        return _Decoder(encoding)
    raise ProviderError(f"{url} sent Content-Encoding {encoding!r}, which was not asked for")


async def read_body(resp: aiohttp.ClientResponse, limit: int) -> tuple[bytes, bool]:
    """The decoded body, at most ``limit`` bytes, and whether it was cut there."""
    decoder = _decoder_for(resp.headers, resp.url)
    # A compressed stream that yields almost nothing must not be read forever either.
    raw_limit = 2 * limit + _CHUNK
    body = bytearray()
    raw = 0
    content = resp.content
    while chunk := await content.read(_CHUNK):  # not iter_chunked: one frame less per read
        raw += len(chunk)
        body += decoder.decode(chunk, limit - len(body) + 1) if decoder else chunk
        if len(body) > limit:
            return bytes(body[:limit]), True
        if raw > raw_limit:
            return bytes(body), True
    return bytes(body), False


