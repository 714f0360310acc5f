"""The knobs' generic 5xx and 429 answers, for emulator parts without provider-shaped ones of their own."""

from __future__ import annotations

from aiohttp import web


def reason(status: int) -> str:
    """The reason phrase of the knobs' two error statuses (503, else 500)."""
    return "Service Unavailable" if status == 503 else "Internal Server Error"


def json_error(status: int) -> web.Response:
    """A 5xx as JSON APIs send it (Algolia's shape, and most others')."""
    return web.json_response({"message": reason(status), "status": status}, status=status)


def json_rate_limited(retry_after: float) -> web.Response:
    """A JSON 429 with Retry-After in whole seconds."""
    return web.json_response({"status": 429, "error": "Too Many Requests", "retry_after": int(retry_after)},
                             status=429, headers={"Retry-After": str(int(retry_after))})


def html_error(status: int) -> web.Response:
    """A 5xx as an nginx front end sends it (web sites, the Wayback Machine)."""
    text = reason(status)
    return web.Response(status=status, content_type="text/html",
                        text=f"<html><head><title>{status} {text}</title></head><body><center><h1>"
                             f"{status} {text}</h1></center><hr><center>nginx</center></body></html>\n")


def html_rate_limited(retry_after: float) -> web.Response:
    """A web site's 429 with Retry-After in whole seconds."""
    return web.Response(status=429, headers={"Retry-After": str(int(retry_after))}, content_type="text/html",
                        text="<html><body><h1>429 Too Many Requests</h1></body></html>\n")
