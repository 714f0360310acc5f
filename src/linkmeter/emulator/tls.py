"""The emulator's TLS: a CA made at start-up and a server context issuing a leaf certificate per SNI name."""

from __future__ import annotations

import ssl
from collections import OrderedDict

import trustme

from linkmeter.engine.urls import registered_domain

# Names seen in a benchmark run stay well below this; the bound only stops a name-spraying client from
# growing the cache without end.
MAX_CACHED_NAMES = 20000
DEFAULT_IDENTITIES = ("localhost", "127.0.0.1", "::1")


class EmulatorTLS:
    """Holds the CA; ``server_context`` verifies as any host name a client asks for via SNI."""

    def __init__(self) -> None:
        # ECDSA (trustme's default key type) keeps issuing a certificate per new name to about a millisecond.
        self._ca = trustme.CA(
            organization_name="linkmeter emulator", key_type=trustme.KeyType.ECDSA
        )
        self.ca_pem: str = self._ca.cert_pem.bytes().decode("ascii")
        self._contexts: OrderedDict[str, ssl.SSLContext] = OrderedDict()
        self.server_context = self._new_context(DEFAULT_IDENTITIES)
        self.server_context.sni_callback = self._on_sni

    def context_for(self, server_name: str) -> ssl.SSLContext:
        """The (cached) server context whose certificate is valid for ``server_name``."""
        name = server_name.lower().rstrip(".")
        key, identities = _identities(name)
        context = self._contexts.get(key)
        if context is None:
            context = self._new_context(identities)
            self._contexts[key] = context
            if len(self._contexts) > MAX_CACHED_NAMES:
                self._contexts.popitem(last=False)
        else:
            self._contexts.move_to_end(key)
        return context

    def client_context(self) -> ssl.SSLContext:
        """A client context trusting only this CA (for tests and tools)."""
        context = ssl.create_default_context(cadata=self.ca_pem)
        return context

    def _on_sni(self, sock: ssl.SSLObject | ssl.SSLSocket, server_name: str | None,
                _context: ssl.SSLContext) -> int | None:
        if not server_name:
            return None  # no SNI (e.g. an IP literal): the default certificate answers
        try:
            sock.context = self.context_for(server_name)
        except (ValueError, UnicodeError):
            # A name trustme cannot put in a certificate: the default certificate answers and the
            # client's verification fails, as it would on the real web.
            return None
        return None

    def _new_context(self, identities: tuple[str, ...]) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        leaf = self._ca.issue_cert(*identities, key_type=trustme.KeyType.ECDSA)
        leaf.configure_cert(context)
        return context


def _identities(name: str) -> tuple[str, tuple[str, ...]]:
    """Cache key and certificate names: one wildcard certificate covers a domain and its direct subdomains."""
    domain = registered_domain(name)
    # A wildcard needs two labels after the star, and covers exactly one label: anything else gets its own.
    if "." in domain and (name == domain or name.count(".") == domain.count(".") + 1):
        return domain, (domain, f"*.{domain}")
    return name, (name,)
