"""Every API error as JSON {"code", "message", "details"} with the right status; never a 500 for bad input."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from ninja import NinjaAPI
from ninja.errors import HttpError, ValidationError

from linkmeter.web.links.services.errors import ServiceError
from linkmeter.web.plans.headers import RETRY_AFTER
from linkmeter.web.plans.services.errors import PlanRefused

logger = logging.getLogger(__name__)

HTTP_ERROR_CODES = {400: "invalid_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
                    405: "method_not_allowed", 413: "payload_too_large", 422: "invalid_request",
                    429: "rate_limited"}


class ApiError(Exception):
    """Raised by handlers: answered as ``status`` with the JSON error body."""

    def __init__(self, status: int, code: str, message: str, details: Any = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details


def not_found(kind: str, key: object) -> ApiError:
    return ApiError(404, "not_found", f"no {kind} {key}", {"kind": kind, "id": key})


def error_body(code: str, message: str, details: Any = None) -> dict[str, Any]:
    return {"code": code, "message": message, "details": details}


def error_response(status: int, code: str, message: str, details: Any = None) -> JsonResponse:
    return JsonResponse(error_body(code, message, details), status=status)


def too_large_response() -> JsonResponse:
    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    return error_response(413, "payload_too_large", f"request body larger than {limit} bytes",
                          {"limit_bytes": limit})


BODY_PARAM = "payload"  # what every handler calls its JSON body: an internal name, left out of locations


def _location(error: dict[str, Any]) -> list[Any]:
    loc = list(error.get("loc", ()))
    return ["body", *loc[2:]] if loc[:2] == ["body", BODY_PARAM] else loc


def validation_message(errors: Sequence[dict[str, Any]]) -> str:
    """The first few problems as one readable line: ``body.urls: Input should be a valid list``."""
    parts = [f"{'.'.join(str(p) for p in _location(error))}: {error.get('msg', 'invalid')}" for error in errors[:3]]
    more = f" (and {len(errors) - 3} more)" if len(errors) > 3 else ""
    return "invalid request: " + "; ".join(parts) + more


def _clean(errors: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"loc": _location(error), "msg": error.get("msg", ""), "type": error.get("type", "")}
            for error in errors]


def install(api: NinjaAPI) -> None:
    """Replace Ninja's default handlers (``{"detail": ...}`` bodies, 400 for bad JSON) with ours."""

    @api.exception_handler(ApiError)
    def on_api_error(request: HttpRequest, exc: ApiError) -> HttpResponse:
        return error_response(exc.status, exc.code, exc.message, exc.details)

    @api.exception_handler(ServiceError)
    def on_service_error(request: HttpRequest, exc: ServiceError) -> HttpResponse:
        # Well-formed but unusable input (no valid URL, unknown provider, ...): 422 with the service's code.
        return error_response(422, exc.code, exc.message, exc.details)

    @api.exception_handler(PlanRefused)
    def on_plan_refused(request: HttpRequest, exc: PlanRefused) -> HttpResponse:
        # The plan refused the work before anything was kept: its own status (403, 422 or 429 with Retry-After).
        response = error_response(exc.status, exc.code, exc.message, exc.details)
        if exc.retry_after is not None:
            response[RETRY_AFTER] = str(exc.retry_after)
        return response

    @api.exception_handler(ValidationError)
    def on_validation_error(request: HttpRequest, exc: ValidationError) -> HttpResponse:
        return error_response(422, "invalid_request", validation_message(exc.errors), _clean(exc.errors))

    @api.exception_handler(HttpError)
    def on_http_error(request: HttpRequest, exc: HttpError) -> HttpResponse:
        cause = exc.__cause__
        if isinstance(cause, RequestDataTooBig):
            return too_large_response()
        if isinstance(cause, ValueError):  # the body is not JSON (or not UTF-8)
            return error_response(422, "invalid_request", "request body is not valid JSON", {"error": str(cause)})
        return error_response(exc.status_code, HTTP_ERROR_CODES.get(exc.status_code, "http_error"), exc.message)

    @api.exception_handler(RequestDataTooBig)
    def on_too_big(request: HttpRequest, exc: RequestDataTooBig) -> HttpResponse:
        return too_large_response()

    @api.exception_handler(Http404)
    def on_404(request: HttpRequest, exc: Http404) -> HttpResponse:
        return error_response(404, "not_found", "not found")

    @api.exception_handler(Exception)
    def on_unexpected(request: HttpRequest, exc: Exception) -> HttpResponse:
        logger.exception("API error on %s %s", request.method, request.path, exc_info=exc)
        return error_response(500, "internal_error", "internal error; it has been logged")
