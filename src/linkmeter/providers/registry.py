"""Every provider and indicator linkmeter ships, in one list: adding a provider is adding it here."""

from __future__ import annotations

from linkmeter.engine.provider import Provider
from linkmeter.indicators.engagement import EngagementIndicator
from linkmeter.providers.dns import DnsProvider
from linkmeter.providers.dnsbl import DnsblProvider
from linkmeter.providers.hackernews import HackerNewsProvider
from linkmeter.providers.page import PageProvider
from linkmeter.providers.rdap import RdapProvider
from linkmeter.providers.reddit import RedditProvider
from linkmeter.providers.wayback import WaybackProvider

PROVIDER_CLASSES: tuple[type[Provider], ...] = (
    PageProvider,
    DnsProvider,
    RdapProvider,
    DnsblProvider,
    WaybackProvider,
    HackerNewsProvider,
    RedditProvider,
    EngagementIndicator,
)
