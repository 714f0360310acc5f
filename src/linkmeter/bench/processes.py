"""Bench subprocesses: start with a log file, wait for a server, stop for sure, and read a process tree's CPU and
memory (/proc)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import aiohttp

START_SECONDS = 60.0  # how long a `linkmeter serve` may take to print its banner, then to answer


@dataclass(frozen=True, slots=True)
class Memory:
    rss_mb: float  # resident now, summed over the process and its descendants
    hwm_mb: float  # each process's peak resident size (VmHWM), summed
    pss_mb: float  # proportional set size, summed: pages shared after a fork are counted once in all
    processes: int


async def start(args: Sequence[str], *, env: Mapping[str, str], log: Path,
                stdout: int | None = None) -> asyncio.subprocess.Process:
    """Start ``args`` in its own process group (so stopping it stops its children), stderr to ``log``."""
    with log.open("ab") as sink:
        return await asyncio.create_subprocess_exec(
            *args, env=dict(env), stdout=stdout if stdout is not None else sink, stderr=sink,
            stdin=asyncio.subprocess.DEVNULL, start_new_session=True,
        )


async def stop(process: asyncio.subprocess.Process, *, grace: float = 20.0) -> None:
    """SIGTERM to the process group, then SIGKILL to it after ``grace`` seconds."""
    if process.returncode is None:
        _signal_group(process.pid, signal.SIGTERM)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(process.wait(), grace)
    _signal_group(process.pid, signal.SIGKILL)  # children a stopped parent left behind, too
    if process.returncode is None:
        await process.wait()


def _signal_group(pid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signum)


def descendants(pid: int) -> list[int]:
    """``pid`` and every process below it."""
    found = [pid]
    index = 0
    while index < len(found):
        current = found[index]
        index += 1
        try:
            children = Path(f"/proc/{current}/task/{current}/children").read_text().split()
        except OSError:
            continue
        found.extend(int(child) for child in children)
    return found


def memory(pid: int) -> Memory:
    """VmRSS, VmHWM and Pss of ``pid`` and its descendants, in MB."""
    rss = hwm = pss = 0
    count = 0
    for each in descendants(pid):
        fields = _status(each)
        if not fields:
            continue
        count += 1
        rss += fields.get("VmRSS", 0)
        hwm += fields.get("VmHWM", 0)
        pss += _pss(each)
    return Memory(round(rss / 1024, 1), round(hwm / 1024, 1), round(pss / 1024, 1), count)


def cpu_seconds(pid: int) -> float:
    """CPU seconds used by ``pid`` and its live descendants (plus the children they have reaped)."""
    total = 0.0
    for each in descendants(pid):
        try:
            fields = Path(f"/proc/{each}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += sum(int(value) for value in fields[11:15])  # utime, stime, cutime, cstime
    return total / os.sysconf("SC_CLK_TCK")


def _status(pid: int) -> dict[str, int]:
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except OSError:
        return {}
    values: dict[str, int] = {}
    for line in lines:
        name, _, rest = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            values[name] = int(rest.split()[0])  # kB
    return values


def _pss(pid: int) -> int:
    try:
        lines = Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()
    except OSError:
        return 0
    for line in lines:
        if line.startswith("Pss:"):
            return int(line.split()[1])  # kB
    return 0


def tail(log: Path, lines: int = 20) -> str:
    """The last lines of a log, for error messages."""
    try:
        return "\n" + "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


async def wait_until_serving(process: asyncio.subprocess.Process, log: Path, *, error: type[Exception],
                             path: str = "/api/v1/providers", headers: Mapping[str, str] | None = None) -> str:
    """The base URL a `linkmeter serve` started with stdout piped prints in its banner, once ``path`` answers 200;
    raises ``error`` (with the log's tail) when it does not start or answer within START_SECONDS."""
    assert process.stdout is not None
    try:
        banner = (await asyncio.wait_for(process.stdout.readline(), START_SECONDS)).decode()
    except TimeoutError:
        banner = ""
    match = re.search(r"http://127\.0\.0\.1:(\d+)/", banner)
    if match is None:
        raise error(f"`linkmeter serve` did not start: {tail(log)}")
    base = f"http://127.0.0.1:{match.group(1)}"
    give_up = time.monotonic() + START_SECONDS
    async with aiohttp.ClientSession() as session:
        while True:  # the banner comes before the migrations: wait until HTTP answers
            with contextlib.suppress(aiohttp.ClientError):
                async with session.get(base + path, headers=dict(headers or {})) as response:
                    if response.status == 200:
                        return base
            if process.returncode is not None or time.monotonic() > give_up:
                raise error(f"`linkmeter serve` does not answer: {tail(log)}")
            await asyncio.sleep(0.1)
