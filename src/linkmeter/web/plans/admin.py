"""The admin: plans are edited here; an account's plan (its AccountPlan, the one source) is set here, on the
user's own page or in the list of account plans (or with the CLI); usage is read-only."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.contrib.auth.models import User
from django.http import HttpRequest

from linkmeter.web.accounts.admin import AccountUserAdmin
from linkmeter.web.plans.models import AccountPlan, Plan, QuotaCounter, UsageDay
from linkmeter.web.plans.selectors.plans import default_plan_code, forget_plans


@admin.register(Plan)
class PlanAdmin(admin.ModelAdmin[Plan]):
    list_display = ("code", "name", "priority", "rate_per_second", "rate_per_minute", "daily_urls", "monthly_urls",
                    "max_batch", "max_in_flight")

    def save_model(self, request: HttpRequest, obj: Plan, form: Any, change: bool) -> None:
        super().save_model(request, obj, form, change)
        forget_plans()  # this process at once; the others within selectors.plans.CACHE_SECONDS


@admin.register(AccountPlan)
class AccountPlanAdmin(admin.ModelAdmin[AccountPlan]):
    list_display = ("user", "plan", "changed_at")
    list_filter = ("plan",)
    search_fields = ("user__username",)
    autocomplete_fields = ("user",)

    def save_model(self, request: HttpRequest, obj: AccountPlan, form: Any, change: bool) -> None:
        super().save_model(request, obj, form, change)
        forget_plans()


class AccountPlanInline(admin.StackedInline[AccountPlan, User]):
    model = AccountPlan
    can_delete = True  # no row: the default plan (free; unlimited for the local owner and superusers)
    fields = ("plan", "changed_at")
    readonly_fields = ("changed_at",)


class PlanUserAdmin(AccountUserAdmin):
    inlines = [*AccountUserAdmin.inlines, AccountPlanInline]
    list_display = (*AccountUserAdmin.list_display, "plan")
    list_select_related = ("account_plan__plan", "account")

    @admin.display(description="plan")
    def plan(self, user: User) -> str:
        row = getattr(user, "account_plan", None)
        if row is not None:
            return str(row.plan.code)
        account = getattr(user, "account", None)
        return default_plan_code(superuser=user.is_superuser,
                                 local_owner=bool(account is not None and account.is_local_owner))

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        super().save_related(request, form, formsets, change)
        forget_plans()


admin.site.unregister(User)
admin.site.register(User, PlanUserAdmin)


class ReadOnly(admin.ModelAdmin[Any]):
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(QuotaCounter)
class QuotaCounterAdmin(ReadOnly):
    """Usage per account: URLs counted against each calendar period's quota."""

    list_display = ("user", "period", "start", "used")
    list_filter = ("period", "start")
    search_fields = ("user__username",)


@admin.register(UsageDay)
class UsageDayAdmin(ReadOnly):
    """Usage per account, key and day (the history GET /api/v1/usage shows)."""

    list_display = ("user", "day", "key_id", "key_label", "urls", "submissions")
    list_filter = ("day",)
    search_fields = ("user__username", "key_label")
    date_hierarchy = "day"
