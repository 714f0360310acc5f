"""The NinjaAPI instance: every router under /api/v1 and our JSON error handlers."""

from __future__ import annotations

from ninja import NinjaAPI

from linkmeter.web.api import analyses, batches, errors, links, providers, spam, usage

api = NinjaAPI(
    title="linkmeter",
    version="1",
    description="Numbers about links: submit URLs, read analyses, batches, link history and provider health. "
                "Every error is JSON {code, message, details}. No authentication yet (API keys come later): "
                "JSON API calls are CSRF-exempt.",
    urls_namespace="api-v1",
    docs_url=None,  # the docs page lives at /api/docs (see urls.py)
)
errors.install(api)
api.add_router("/analyses", analyses.router)
api.add_router("/batches", batches.router)
api.add_router("/links", links.router)
api.add_router("/providers", providers.router)
api.add_router("/usage", usage.router)
api.add_router("/feedback", spam.feedback_router)
api.add_router("/spam", spam.spam_router)
