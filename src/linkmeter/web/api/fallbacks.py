"""JSON answers where Django would answer HTML: unknown API paths (404) and wrong methods (405)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from functools import wraps
from typing import Any, cast

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.http import HttpRequest, HttpResponseNotAllowed, JsonResponse
from django.http.response import HttpResponseBase
from django.urls import URLPattern, URLResolver
from django.views.decorators.csrf import csrf_exempt

from linkmeter.web.api.errors import error_body, error_response

View = Callable[..., HttpResponseBase]


def _json_not_allowed(request: HttpRequest, response: HttpResponseBase) -> HttpResponseBase:
    if not isinstance(response, HttpResponseNotAllowed):
        return response
    allowed = [m.strip() for m in response["Allow"].split(",") if m.strip()]
    answer = JsonResponse(error_body("method_not_allowed", f"{request.method} is not allowed here",
                                     {"allowed": allowed}), status=405)
    answer["Allow"] = response["Allow"]
    return answer


def json_method_errors(view: View) -> View:
    """Wrap a view (sync or async) so that its 405 answer is our JSON error, keeping the Allow header."""
    if iscoroutinefunction(view):
        async_view = cast(Callable[..., Awaitable[HttpResponseBase]], view)

        @wraps(view)
        async def async_wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
            return _json_not_allowed(request, await async_view(request, *args, **kwargs))

        return cast(View, markcoroutinefunction(async_wrapper))

    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        return _json_not_allowed(request, view(request, *args, **kwargs))

    return wrapper


def with_json_fallbacks(patterns: list[URLPattern | URLResolver]) -> list[URLPattern | URLResolver]:
    """Ninja's URL patterns with JSON 405s, and a JSON 404 at the API root (Ninja raises Http404 there
    outside any operation, which Django would answer in HTML)."""
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            with_json_fallbacks(pattern.url_patterns)
        elif pattern.name == "api-root":
            pattern.callback = not_found
        else:
            pattern.callback = json_method_errors(pattern.callback)
    return patterns


@csrf_exempt
def not_found(request: HttpRequest, path: str = "") -> JsonResponse:
    return error_response(404, "not_found", f"no API endpoint at {request.path}")
