"""``python -m linkmeter ARGS`` as a real process from async tests (an in-test emulator keeps serving meanwhile):
its exit status and output, with none of the developer's own settings."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from dataclasses import dataclass
from typing import Any

PROCESS_LIMIT = 60.0  # seconds: a hung process fails its test instead of hanging the run


@dataclass(frozen=True, slots=True)
class Completed:
    code: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.stdout)


def clean_environ(*also: str) -> dict[str, str]:
    """This process's environment without LINKMETER_* variables (a developer's own settings) and ``also``."""
    return {k: v for k, v in os.environ.items() if not k.startswith("LINKMETER_") and k not in also}


async def run_linkmeter(*args: str, stdin: str | None = None, env: dict[str, str] | None = None,
                        limit: float = PROCESS_LIMIT) -> Completed:
    """Runs ``python -m linkmeter ARGS`` (default environment: ``clean_environ`` without the terminal's size,
    which would change the tables); kills it and fails after ``limit`` seconds."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "linkmeter", *args,
        stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env=clean_environ("COLUMNS", "LINES") if env is None else env,
    )
    try:
        async with asyncio.timeout(limit):
            out, err = await process.communicate(stdin.encode() if stdin is not None else None)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise
    assert process.returncode is not None
    return Completed(process.returncode, out.decode(), err.decode())
