"""The engine's exceptions, in a leaf module: it imports nothing from linkmeter, so every layer may raise them.

The hierarchy::

    Exception
     ├── ProviderError          a provider call failed; the engine retries it when ``retryable``, pauses the
     │    │                     provider after it when ``rate_limited`` (raised by providers, http.py,
     │    │                     dns.py, bodies.py, ssrf.py)
     │    ├── FetchRefused      a request the HTTP client will not make: the SSRF guard, a redirect limit or
     │    │                     target, a URL it cannot fetch (``code`` says which); never retried
     │    └── ProviderDisabled  the upstream refuses this provider as configured (e.g. search closed to the
     │                          session it has): the call ends ``disabled`` with the reason, never retried,
     │                          and the breaker does not count it
     └── ValueError
          └── SettingsError     a LINKMETER_* variable holds a value that cannot be used; the message names
                                the variable (the CLI and ``linkmeter serve`` exit with status 2)

Errors that only one module raises stay with it: ``PlanError`` (plan.py), ``InvalidURL`` (urls.py), and the
Redis stores' internal ``RedisUnavailable`` (state/link.py), which never leaves them.
"""

from __future__ import annotations


class ProviderError(Exception):
    """A failed call. ``retryable`` failures are retried by the engine; ``retry_after`` is in seconds."""

    def __init__(
        self,
        message: str,
        *,
        retryable: bool = False,
        retry_after: float | None = None,
        status: int | None = None,
        rate_limited: bool = False,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.retryable = retryable
        self.retry_after = retry_after
        self.status = status
        self.rate_limited = rate_limited


class FetchRefused(ProviderError):
    """A request the client will not make; ``code``: blocked_address, too_many_redirects, bad_redirect, bad_url."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message, retryable=False)
        self.code = code


class ProviderDisabled(ProviderError):
    """The upstream will not serve this provider as it is set up; the call ends ``disabled`` with ``message``
    (which says what to change), is not retried and does not count against the provider's health."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message, retryable=False, status=status)


class SettingsError(ValueError):
    """A LINKMETER_* variable has a value that cannot be used; the message names it."""
