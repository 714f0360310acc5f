"""The ceiling: replays the engine's recorded calls through a bare aiohttp + dnspython loop, round by round.

Each URL's rounds run one after the other; a round's chains (``recorder.Chain``) side by side, a chain's calls
one after the other. A bulk query's chain is shared by the URLs whose keys it carried: the first of them to
reach it sends it, the others wait for that request, as they waited for it in the engine.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import time
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Any

import aiohttp
import dns.asyncresolver
import dns.nameserver
import dns.rdatatype
import dns.resolver
from aiohttp.abc import AbstractResolver, ResolveResult

from linkmeter.bench.recorder import Call, Chain, Recording
from linkmeter.engine.http import DNS_CACHE_SECONDS


class _EmulatorDnsResolver(AbstractResolver):
    """Page hosts resolved as the engine's client resolves them: A and AAAA asked of the emulator's DNS server
    together (the connector caches answers for as long as the engine's does), with no guard around them.
    The emulator names itself in every answer; its ports stand in for 80 and 443 (the demo's port map)."""

    def __init__(self, resolver: dns.asyncresolver.Resolver, port_map: dict[int, int]) -> None:
        self._resolver = resolver
        self._port_map = port_map

    async def resolve(self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
                      ) -> list[ResolveResult]:
        answers = await asyncio.gather(*(self._resolver.resolve(host, kind, raise_on_no_answer=False)
                                         for kind in ("A", "AAAA")), return_exceptions=True)
        addresses = [record.to_text() for answer in answers if isinstance(answer, dns.resolver.Answer)
                     for record in answer if record.rdtype == dns.rdatatype.A]
        if not addresses:
            raise OSError(f"cannot resolve {host}")
        return [ResolveResult(hostname=host, host=address, port=self._port_map.get(port, port),
                              family=socket.AF_INET, proto=0, flags=socket.AI_NUMERICHOST)
                for address in addresses]

    async def close(self) -> None:
        return None


@dataclass(slots=True)
class CeilingRun:
    seconds: float
    cpu_seconds: float
    url_seconds: list[float]
    calls: int
    errors: int


async def replay(recording: Recording, *, concurrency: int, port_map: dict[int, int],
                 dns_server: tuple[str, int], ca_pem: str) -> CeilingRun:
    context = ssl.create_default_context()
    context.load_verify_locations(cadata=ca_pem)
    resolver = dns.asyncresolver.Resolver(configure=False)
    resolver.nameservers = [dns.nameserver.Do53Nameserver(*dns_server)]
    resolver.cache = None
    connector = aiohttp.TCPConnector(limit=0, resolver=_EmulatorDnsResolver(resolver, port_map), ssl=context,
                                     use_dns_cache=True, ttl_dns_cache=DNS_CACHE_SECONDS)
    urls = list(recording.calls)
    queue: asyncio.Queue[str] = asyncio.Queue()
    for url in urls:
        queue.put_nowait(url)
    url_seconds: list[float] = []
    errors = 0

    async def one_call(session: aiohttp.ClientSession, call: Call) -> None:
        nonlocal errors
        try:
            if call.kind == "dns":
                # NXDOMAIN is an answer, as for the engine: a blocklist's "not listed", no such domain.
                with contextlib.suppress(dns.resolver.NXDOMAIN):
                    await resolver.resolve(call.args[0], call.args[1], raise_on_no_answer=False)
            elif call.kind == "page":
                async with session.get(call.args[0], max_redirects=5) as resp:
                    await resp.read()
            else:
                method, url = call.args[0], call.args[1]
                kwargs: dict[str, Any] = {k: call.kwargs[k] for k in ("params", "headers", "data")
                                          if call.kwargs.get(k) is not None}
                if call.kwargs.get("json_body") is not None:
                    kwargs["json"] = call.kwargs["json_body"]
                async with session.request(method, url, **kwargs) as resp:
                    await resp.read()
        except Exception:  # the ceiling counts failures but, like the engine, never stops for them
            errors += 1

    async def one_chain(session: aiohttp.ClientSession, chain: Chain) -> None:
        for call in chain.calls:
            await one_call(session, call)

    shared: dict[int, asyncio.Task[None]] = {}  # id(chain) -> the one replay of a bulk query's request

    def run_chain(session: aiohttp.ClientSession, chain: Chain) -> Awaitable[None]:
        if not chain.shared:
            return one_chain(session, chain)
        task = shared.get(id(chain))
        if task is None:
            task = shared[id(chain)] = asyncio.create_task(one_chain(session, chain))
        return task

    async def worker(session: aiohttp.ClientSession) -> None:
        while not queue.empty():
            url = queue.get_nowait()
            began = time.perf_counter()
            for chains in recording.rounds(url):
                if len(chains) == 1:
                    await run_chain(session, chains[0])
                else:
                    await asyncio.gather(*(run_chain(session, chain) for chain in chains))
            url_seconds.append(time.perf_counter() - began)

    cpu = time.process_time()
    began = time.perf_counter()
    async with aiohttp.ClientSession(connector=connector) as session:
        await asyncio.gather(*(worker(session) for _ in range(min(concurrency, len(urls)) or 1)))
    return CeilingRun(seconds=time.perf_counter() - began, cpu_seconds=time.process_time() - cpu,
                      url_seconds=url_seconds, calls=recording.total, errors=errors)
