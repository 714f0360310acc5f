"""Reading accounts: users with their keys (their plans: ``plans.selectors.plans.users_with_plans``), a user's
keys, and what a request was authenticated as."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import User
from django.db.models import Count, Q
from django.http import HttpRequest

from linkmeter.web.accounts.models import ApiKey


def current_key_id(request: HttpRequest) -> str | None:
    """The public id of the key the request was made with (safe to log), or None."""
    key: ApiKey | None = getattr(request, "api_key", None)
    return key.id_public if key is not None else None


def users_list() -> list[dict[str, Any]]:
    users = (User.objects.select_related("account").order_by("id")
             .annotate(keys=Count("api_keys", filter=Q(api_keys__revoked_at__isnull=True))))
    return [{"id": u.pk, "username": u.username, "email": u.email, "active": u.is_active, "admin": u.is_superuser,
             "local_owner": getattr(getattr(u, "account", None), "is_local_owner", False),
             "keys": u.keys} for u in users]


def keys_of(user: User) -> list[ApiKey]:
    return list(ApiKey.objects.filter(user=user).order_by("-id"))


def key_row(key: ApiKey) -> dict[str, Any]:
    return {"id": key.id_public, "name": key.name, "scopes": list(key.scopes),
            "created_at": key.created_at.isoformat(),
            "expires_at": key.expires_at.isoformat() if key.expires_at else None,
            "last_used_at": key.last_used_at.isoformat() if key.last_used_at else None,
            "revoked_at": key.revoked_at.isoformat() if key.revoked_at else None,
            "active": key.is_active}
