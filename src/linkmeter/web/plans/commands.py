"""`linkmeter user ...`: the accounts' commands (``accounts.commands``) with the ones that show or set a plan,
which write and read the account's AccountPlan, as the admin and the usage page do."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from linkmeter.web.accounts import commands as accounts


def user_create(*, username: str, password: str | None, email: str, plan: str, admin: bool) -> None:
    from linkmeter.web.plans.services.assign import account_create

    user = account_create(username=username, password=password, email=email, code=plan, admin=admin)
    login = "no password (keys only; set one with the admin or `linkmeter user create` again)" if password is None \
        else "can log in"
    print(f"user {user.username} created (id {user.pk}, plan {plan}{', admin' if admin else ''}): {login}")


def user_list(*, as_json: bool) -> None:
    import json

    from linkmeter.web.accounts import selectors
    from linkmeter.web.plans.selectors.plans import users_with_plans

    rows = users_with_plans(selectors.users_list())
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
    from linkmeter.web.plans.services.assign import account_plan_set

    row = account_plan_set(user=services.user_by_name(username), code=plan)
    print(f"user {username} is on plan {row.plan.code}")


ACTIONS: dict[str, Callable[..., None]] = {
    **accounts.ACTIONS, "user_create": user_create, "user_list": user_list, "user_set_plan": user_set_plan,
}


def run(action: str, **options: Any) -> int:
    """Runs one action of ``linkmeter user`` or ``linkmeter key``; returns the exit status."""
    return accounts.run(action, ACTIONS, **options)
