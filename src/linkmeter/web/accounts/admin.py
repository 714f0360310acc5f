"""The admin: each user's account inline, and API keys (never their hash; revoking announces it). The user's
plan is shown and set by the plans app's admin (its inline on the same page)."""

from __future__ import annotations

from django.contrib import admin
from django.contrib.auth.admin import UserAdmin
from django.contrib.auth.models import User
from django.db.models import QuerySet
from django.http import HttpRequest

from linkmeter.web.accounts.models import Account, ApiKey
from linkmeter.web.accounts.services import key_revoke


class AccountInline(admin.StackedInline[Account, User]):
    model = Account
    can_delete = False
    fields = ("is_local_owner", "created_at")
    readonly_fields = ("is_local_owner", "created_at")


class AccountUserAdmin(UserAdmin[User]):
    inlines = [AccountInline]
    list_display: tuple[str, ...] = ("username", "email", "is_active", "is_staff")


admin.site.unregister(User)
admin.site.register(User, AccountUserAdmin)


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin[ApiKey]):
    list_display = ("id_public", "name", "user", "scopes", "created_at", "expires_at", "last_used_at", "revoked_at")
    list_filter = ("revoked_at",)
    search_fields = ("id_public", "name", "user__username")
    fields = ("id_public", "name", "user", "scopes", "created_at", "expires_at", "last_used_at", "revoked_at")
    readonly_fields = ("id_public", "user", "created_at", "last_used_at", "revoked_at")
    actions = ["revoke"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # a key is made where it can be shown once: the keys page or `linkmeter key create`

    @admin.action(description="Revoke the selected keys")
    def revoke(self, request: HttpRequest, queryset: QuerySet[ApiKey]) -> None:
        for key in queryset:
            key_revoke(key=key)
