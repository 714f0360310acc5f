"""`linkmeter bench`: throughput of the engine against a bare aiohttp ceiling, in one run."""
