"""Accounts' business logic: users (create, disable), the local owner, and API keys (create, revoke). Plans are
the plans app's (``plans.services.assign``)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from django.contrib.auth.models import User
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from linkmeter.web.accounts import keys
from linkmeter.web.accounts.models import ALL_SCOPES, Account, ApiKey
from linkmeter.web.links.services.errors import ServiceError

log = logging.getLogger(__name__)

LOCAL_OWNER_USERNAME = "local"
MAX_KEY_NAME = 100


def account_for_new_user(sender: type[User], instance: User, created: bool, **kwargs: Any) -> None:
    """post_save of a user: every user has an Account (its profile)."""
    if created and not kwargs.get("raw"):
        Account.objects.get_or_create(user=instance)


def user_create(*, username: str, password: str | None, email: str = "", admin: bool = False,
                check_password: bool = True) -> User:
    """A new account (on the default plan until ``plans.services.assign`` puts it on another). ``password``
    None: no password (keys only, or set one later)."""
    username = username.strip()
    if not username:
        raise ServiceError("invalid_username", "a username is needed")
    if User.objects.filter(username__iexact=username).exists():
        raise ServiceError("username_taken", f"there is already a user named {username!r}")
    if password is not None and check_password:
        try:
            validate_password(password, User(username=username, email=email))
        except ValidationError as exc:
            raise ServiceError("weak_password", " ".join(exc.messages)) from exc
    with transaction.atomic():
        user = User(username=username, email=email, is_staff=admin, is_superuser=admin)
        if password is None:
            user.set_unusable_password()
        else:
            user.set_password(password)
        user.save()
    log.info("user %s created", username)
    return user


def user_by_name(username: str) -> User:
    user = User.objects.filter(username__iexact=username.strip()).first()
    if user is None:
        raise ServiceError("no_such_user", f"no user named {username!r}")
    return user


def user_disable(*, user: User) -> None:
    """The user can no longer log in nor use any key (every process's key cache drops its keys)."""
    from linkmeter.web.accounts import authn

    user.is_active = False
    user.save(update_fields=["is_active"])
    key_ids = list(ApiKey.objects.filter(user=user).values_list("id_public", flat=True))
    for key_id in key_ids:
        authn.verifier().forget(key_id)

    def announce() -> None:
        for key_id in key_ids:
            _announce_revocation(key_id)

    transaction.on_commit(announce)


def local_owner() -> User:
    """The account local mode serves without a login, created on first use (its plan: ``unlimited``, by the
    plans app's rule for a local owner with no plan of its own)."""
    found = User.objects.filter(account__is_local_owner=True).select_related("account").first()
    if found is not None:
        return found
    try:
        with transaction.atomic():
            user = User(username=_free_username(LOCAL_OWNER_USERNAME))
            user.set_unusable_password()
            user.save()
            Account.objects.filter(user=user).update(is_local_owner=True)
    except IntegrityError:  # another process created it at the same moment
        pass
    return User.objects.select_related("account").get(account__is_local_owner=True)


def _free_username(wanted: str) -> str:
    name, n = wanted, 1
    while User.objects.filter(username=name).exists():
        n += 1
        name = f"{wanted}{n}"
    return name


def validate_scopes(scopes: Sequence[str] | None) -> list[str]:
    chosen = [s.strip().lower() for s in (scopes or ALL_SCOPES) if s and s.strip()]
    unknown = sorted(set(chosen) - set(ALL_SCOPES))
    if unknown or not chosen:
        raise ServiceError("invalid_scope", f"scopes must be some of {', '.join(ALL_SCOPES)}",
                           {"unknown": unknown, "known": ALL_SCOPES})
    return [s for s in ALL_SCOPES if s in chosen]


def key_create(*, user: User, name: str, scopes: Sequence[str] | None = None,
               expires_at: datetime | None = None) -> tuple[ApiKey, str]:
    """A new key: (its record, the full key). The full key is returned this once and stored nowhere."""
    from linkmeter.web.accounts.authn import server_secret

    name = name.strip()
    if not name or len(name) > MAX_KEY_NAME:
        raise ServiceError("invalid_key_name", f"a key needs a name of 1 to {MAX_KEY_NAME} characters")
    if expires_at is not None and expires_at <= timezone.now():
        raise ServiceError("invalid_expiry", "the expiry must be in the future")
    chosen = validate_scopes(scopes)
    full, parsed = keys.generate()
    key = ApiKey.objects.create(id_public=parsed.key_id, user=user, name=name, scopes=chosen,
                                secret_hash=keys.hash_secret(server_secret(), parsed), expires_at=expires_at)
    log.info("API key %s created for user %s", key.id_public, user.pk)
    return key, full


def key_for_user(*, user: User, key_id: str) -> ApiKey:
    key = ApiKey.objects.filter(user=user, id_public=key_id.strip()).first()
    if key is None:
        raise ServiceError("no_such_key", f"no key {key_id!r} for this user")
    return key


def key_revoke(*, key: ApiKey) -> ApiKey:
    """Revoked now: this process forgets it at once, the others when told (Redis) or within the cache lifetime."""
    if key.revoked_at is None:
        key.revoked_at = timezone.now()
        key.save(update_fields=["revoked_at"])
    from linkmeter.web.accounts import authn

    authn.verifier().forget(key.id_public)  # now, and again once committed (a read meanwhile saw the old row)
    transaction.on_commit(lambda: _announce_revocation(key.id_public))
    log.info("API key %s revoked", key.id_public)
    return key


def _announce_revocation(key_id: str) -> None:
    from linkmeter.web.accounts import authn
    from linkmeter.web.accounts.keycache import publish_revocation

    authn.verifier().forget(key_id)
    location = authn.redis_location()
    if location is not None:
        publish_revocation(*location, key_id)
