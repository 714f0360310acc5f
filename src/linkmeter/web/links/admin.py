"""Read-mostly admin for every model: browse and search; results are written only by the services."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from linkmeter.web.links.models import Analysis, Batch, BatchItem, Feedback, Link, ProviderResult


class ReadOnlyAdmin(admin.ModelAdmin[Any]):
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Link)
class LinkAdmin(ReadOnlyAdmin):
    list_display = ("id", "url", "domain", "first_seen", "latest_analysis")
    search_fields = ("url", "domain")


class ProviderResultInline(admin.TabularInline[ProviderResult, Analysis]):
    model = ProviderResult
    fields = ("provider", "status", "latency_ms", "attempts", "message")
    readonly_fields = fields
    extra = 0
    can_delete = False


@admin.register(Analysis)
class AnalysisAdmin(ReadOnlyAdmin):
    list_display = ("id", "link", "status", "priority", "queued_at", "finished_at", "elapsed_ms")
    list_filter = ("status",)
    search_fields = ("link__url",)
    inlines = [ProviderResultInline]


@admin.register(ProviderResult)
class ProviderResultAdmin(ReadOnlyAdmin):
    list_display = ("id", "analysis", "provider", "status", "latency_ms", "attempts", "created_at")
    list_filter = ("provider", "status")


class BatchItemInline(admin.TabularInline[BatchItem, Batch]):
    model = BatchItem
    fields = ("position", "analysis", "reused")
    readonly_fields = fields
    extra = 0
    can_delete = False


@admin.register(Batch)
class BatchAdmin(ReadOnlyAdmin):
    list_display = ("id", "name", "source", "total", "created_at", "finished_at")
    list_filter = ("source",)
    inlines = [BatchItemInline]


@admin.register(Feedback)
class FeedbackAdmin(admin.ModelAdmin[Feedback]):
    """Feedback may be deleted (a mistaken click) but not edited."""

    list_display = ("id", "link", "label", "user", "created_at")
    list_filter = ("label",)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
