"""Finds the provider classes in a package's modules, so that adding a provider is adding its file.

A module contributes every concrete ``Provider`` subclass *defined* in it (not imported into it); a module
defining none (a parsing helper such as ``htmlmeta`` or ``timestamps``) contributes nothing. Modules whose
name starts with ``_``, and ``registry`` and ``discovery`` themselves, are not imported.

Listing order (``linkmeter providers``, the results tables' columns, the providers page): a class's
``order`` (``Provider.order``, lower first), then its ``name``. The engine's
plan orders calls by the DAG, whatever the listing order.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from types import ModuleType

from linkmeter.engine.provider import Provider

NOT_SCANNED = frozenset({"registry"})


def listing_key(cls: type[Provider]) -> tuple[int, str]:
    return cls.order, cls.name


def provider_classes(package: ModuleType) -> tuple[type[Provider], ...]:
    """The provider classes defined in the modules of ``package``, in listing order."""
    found: list[type[Provider]] = []
    for info in pkgutil.iter_modules(package.__path__, package.__name__ + "."):
        short = info.name.rsplit(".", 1)[-1]
        if short.startswith("_") or short in NOT_SCANNED:
            continue
        module = importlib.import_module(info.name)
        found.extend(value for value in vars(module).values()
                     if inspect.isclass(value) and issubclass(value, Provider) and not inspect.isabstract(value)
                     and value.__module__ == module.__name__)
    return tuple(sorted(found, key=listing_key))
