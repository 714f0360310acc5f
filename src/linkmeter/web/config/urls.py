"""URL routes: the admin, the REST API under /api/v1 (docs at /api/docs), and the web UI."""

from django.contrib import admin
from django.urls import URLPattern, URLResolver, include, path

urlpatterns: list[URLPattern | URLResolver] = [
    path("admin/", admin.site.urls),
    path("api/", include("linkmeter.web.api.urls")),
    path("", include("linkmeter.web.ui.urls")),
]
