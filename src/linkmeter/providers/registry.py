"""Every provider and indicator linkmeter ships, found in their packages: adding one is adding its file.

``PROVIDERS`` are the modules of ``linkmeter.providers`` (they ask something upstream, so the emulator
serves each of them), ``INDICATORS`` those of ``linkmeter.indicators`` (derived numbers, no I/O); see
``linkmeter.providers._discovery`` for what counts as a provider module and for the listing order.
"""

from __future__ import annotations

from collections.abc import Iterable

import linkmeter.indicators
import linkmeter.providers
from linkmeter.engine.provider import Provider, SignalSpec
from linkmeter.providers._discovery import listing_key, provider_classes

PROVIDERS: tuple[type[Provider], ...] = provider_classes(linkmeter.providers)
INDICATORS: tuple[type[Provider], ...] = provider_classes(linkmeter.indicators)
PROVIDER_CLASSES: tuple[type[Provider], ...] = (*PROVIDERS, *INDICATORS)
PROVIDER_NAMES: tuple[str, ...] = tuple(cls.name for cls in PROVIDER_CLASSES)  # in listing order
# What runs when a submission names no provider (``Provider.in_default_set``), in listing order.
DEFAULT_NAMES: tuple[str, ...] = tuple(cls.name for cls in PROVIDER_CLASSES if cls.in_default_set)

_POSITION = {cls: index for index, cls in enumerate(PROVIDER_CLASSES)}


def headlines(classes: Iterable[type[Provider]] = PROVIDER_CLASSES) -> tuple[tuple[str, SignalSpec], ...]:
    """The results tables' columns: (signal, spec) of every headline signal of ``classes``, in listing order
    (classes this registry does not list come last), each provider's in the order of its ``provides``."""
    ordered = sorted(classes, key=lambda cls: (_POSITION.get(cls, len(_POSITION)), listing_key(cls)))
    return tuple((signal, spec) for cls in ordered for signal, spec in cls.provides.items()
                 if spec.headline is not None)
