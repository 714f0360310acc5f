"""`linkmeter user disable` and `linkmeter key ...`: accounts and API keys from the command line (the database of
DATABASE_URL, else SQLite under LINKMETER_DATA_DIR, migrated first). The user commands that show or set a plan
are the plans app's (``plans.commands``), which runs these too."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


class CommandFailed(RuntimeError):
    """A message for stderr and exit status 1 (no such user, a name taken, a weak password...)."""


def setup() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "linkmeter.web.config.settings")
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", interactive=False, verbosity=0)


def run(action: str, actions: Mapping[str, Callable[..., None]] | None = None, **options: Any) -> int:
    """Runs one action (of ``actions``, default this module's); prints to stdout, errors to stderr; returns the
    exit status."""
    setup()
    from linkmeter.web.links.services.errors import ServiceError

    try:
        (ACTIONS if actions is None else actions)[action](**options)
    except (ServiceError, CommandFailed) as exc:
        print(f"linkmeter: {exc}", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK


def user_disable(*, username: str) -> None:
    from linkmeter.web.accounts import services

    services.user_disable(user=services.user_by_name(username))
    print(f"user {username} is disabled: no login, and none of its keys works")


def key_create(*, username: str, name: str, scopes: Sequence[str], expires_days: float | None) -> None:
    from linkmeter.web.accounts import services
    from linkmeter.web.accounts.authn import expiry_in

    key, full = services.key_create(user=services.user_by_name(username), name=name, scopes=scopes or None,
                                    expires_at=expiry_in(expires_days))
    print(f"key {key.id_public} ({key.name}, scopes {', '.join(key.scopes)}) for {username}; shown this once, "
          "linkmeter keeps only a hash:", file=sys.stderr)
    print(full)  # alone on stdout, so `KEY=$(linkmeter key create ...)` works


def key_list(*, username: str, as_json: bool) -> None:
    import json

    from linkmeter.web.accounts import selectors, services

    rows = [selectors.key_row(k) for k in selectors.keys_of(services.user_by_name(username))]
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    print(f"{'id':18} {'name':24} {'scopes':12} {'state':8} {'last used':20} expires")
    for row in rows:
        state = "revoked" if row["revoked_at"] else ("active" if row["active"] else "expired")
        print(f"{row['id']:18} {row['name'][:24]:24} {','.join(row['scopes']):12} {state:8} "
              f"{(row['last_used_at'] or 'never')[:19]:20} {(row['expires_at'] or 'never')[:19]}")


def key_revoke(*, key_id: str) -> None:
    from linkmeter.web.accounts import services
    from linkmeter.web.accounts.models import ApiKey

    key = ApiKey.objects.filter(id_public=key_id.strip()).first()
    if key is None:
        raise CommandFailed(f"no key {key_id!r}")
    services.key_revoke(key=key)
    print(f"key {key.id_public} ({key.name}) revoked")


ACTIONS: dict[str, Callable[..., None]] = {
    "user_disable": user_disable, "key_create": key_create, "key_list": key_list, "key_revoke": key_revoke,
}
