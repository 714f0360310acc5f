"""URL routes: the admin, the REST API under /api/v1 (docs at /api/docs), /metrics, and the web UI."""

from django.contrib import admin
from django.urls import URLPattern, URLResolver, include, path

from linkmeter.web.metrics import metrics_view

urlpatterns: list[URLPattern | URLResolver] = [
    path("admin/", admin.site.urls),
    path("api/", include("linkmeter.web.api.urls")),
    path("accounts/", include("linkmeter.web.accounts.urls")),
    path("metrics", metrics_view, name="metrics"),  # Prometheus; see docs/observability.md
    path("", include("linkmeter.web.ui.urls")),
]
