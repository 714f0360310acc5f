"""The interactive API documentation (Swagger UI, served from local static files) at /api/docs."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse

from linkmeter.web.api.api import api


def api_docs(request: HttpRequest) -> HttpResponse:
    return api.docs.render_page(request, api)
