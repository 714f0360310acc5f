"""Accounts' profiles (one per Django user: whether it is the local owner) and their API keys. An account's plan
is the plans app's (``linkmeter.web.plans``: its AccountPlan row), the one source of it."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone


class Scope(models.TextChoices):
    READ = "read"
    SUBMIT = "submit"


ALL_SCOPES = [Scope.READ.value, Scope.SUBMIT.value]


class Account(models.Model):
    """A user's profile."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="account")
    is_local_owner = models.BooleanField(default=False)  # the account local mode serves without a login
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["is_local_owner"], condition=models.Q(is_local_owner=True),
                                    name="one_local_owner"),
        ]

    def __str__(self) -> str:
        return f"account of {self.user_id}"


class ApiKey(models.Model):
    """An API key: only its public id and the keyed hash of its secret are stored."""

    id_public = models.CharField(max_length=20, unique=True)  # lmk_<12 chars>: shown in lists and logs
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_keys")
    name = models.CharField(max_length=100)
    secret_hash = models.CharField(max_length=64)  # HMAC-SHA256 hex, see accounts.keys.hash_secret
    scopes = models.JSONField(default=list)
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        verbose_name = "API key"

    def __str__(self) -> str:
        return f"{self.id_public} ({self.name})"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None and (self.expires_at is None or self.expires_at > timezone.now())
