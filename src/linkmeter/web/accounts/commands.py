"""`linkmeter user ...` and `linkmeter key ...`: accounts and API keys from the command line (the database of
DATABASE_URL, else SQLite under LINKMETER_DATA_DIR, migrated first)."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
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


def run(action: str, **options: Any) -> int:
    """Runs one action; prints to stdout, errors to stderr; returns the exit status."""
    setup()
    from linkmeter.web.links.services.errors import ServiceError

    try:
        ACTIONS[action](**options)
    except (ServiceError, CommandFailed) as exc:
        print(f"linkmeter: {exc}", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK


def user_create(*, username: str, password: str | None, email: str, plan: str, admin: bool) -> None:
    from linkmeter.web.accounts import services

    user = services.user_create(username=username, password=password, email=email, plan=plan, admin=admin)
    login = "no password (keys only; set one with the admin or `linkmeter user create` again)" if password is None \
        else "can log in"
    print(f"user {user.username} created (id {user.pk}, plan {plan}{', admin' if admin else ''}): {login}")


def user_list(*, as_json: bool) -> None:
    import json

    from linkmeter.web.accounts import selectors

    rows = selectors.users_list()
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    print(f"{'id':>5}  {'username':20} {'plan':12} {'active':6} {'keys':>4}  notes")
    for row in rows:
        notes = ", ".join(n for n, on in (("admin", row["admin"]), ("local owner", row["local_owner"])) if on)
        print(f"{row['id']:>5}  {row['username']:20} {row['plan']:12} {'yes' if row['active'] else 'no':6} "
              f"{row['keys']:>4}  {notes}")


def user_set_plan(*, username: str, plan: str) -> None:
    from linkmeter.web.accounts import services

    account = services.user_set_plan(user=services.user_by_name(username), plan=plan)
    print(f"user {username} is on plan {account.plan_code}")


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


ACTIONS: dict[str, Any] = {
    "user_create": user_create, "user_list": user_list, "user_set_plan": user_set_plan,
    "user_disable": user_disable, "key_create": key_create, "key_list": key_list, "key_revoke": key_revoke,
}
