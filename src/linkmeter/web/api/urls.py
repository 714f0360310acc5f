"""API routes: the REST API under /api/v1 (OpenAPI at /api/v1/openapi.json), its docs at /api/docs."""

from django.urls import URLPattern, URLResolver, path, re_path

from linkmeter.web.api.api import api
from linkmeter.web.api.docs import api_docs
from linkmeter.web.api.fallbacks import not_found, with_json_fallbacks

_patterns, _app_name, _namespace = api.urls

urlpatterns: list[URLPattern | URLResolver] = [
    path("v1/", (with_json_fallbacks(_patterns), _app_name, _namespace)),
    path("docs", api_docs, name="api-docs"),
    re_path(r"^(?P<path>.*)$", not_found),  # JSON, not Django's HTML 404, for any other /api/ path
]
