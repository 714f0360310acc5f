"""Where the tests find the real services this machine runs (CI starts them): one address each."""

from __future__ import annotations

import os
from urllib.parse import urlsplit

# The Redis the state, cache and worker tests share; each test keeps to a key prefix (or database) of its own.
REDIS_URL = os.environ.get("LINKMETER_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
UNREACHABLE_REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens on port 1: connections are refused


def redis_database(number: int) -> str:
    """REDIS_URL with database ``number`` instead of its own."""
    return urlsplit(REDIS_URL)._replace(path=f"/{number}").geturl()
