"""Django settings, all from the environment: LINKMETER_* through ``linkmeter.engine.env`` (one parser for every
side), DATABASE_URL through django-environ; embedded SQLite unless DATABASE_URL is set."""

from __future__ import annotations

import ipaddress
import os
import secrets
from collections.abc import Mapping
from typing import Any

import django_stubs_ext
import environ
from django.utils.csp import CSP

from linkmeter.engine import env
from linkmeter.engine.settings import SettingsError, data_dir, fetch_allow
from linkmeter.web.logging import logging_config

django_stubs_ext.monkeypatch()  # lets typed generics such as ModelAdmin[Link] work at run time

DATA_DIR = data_dir(os.environ)
DATA_DIR.mkdir(parents=True, exist_ok=True)


def _secret_key() -> str:
    """LINKMETER_SECRET_KEY, else a key generated once and kept in the data directory."""
    configured = os.environ.get("LINKMETER_SECRET_KEY", "")  # a key: used exactly as given
    if configured:
        return configured
    path = DATA_DIR / "secret_key"
    if not path.exists():
        path.write_text(secrets.token_urlsafe(50))
        path.chmod(0o600)
    return path.read_text().strip()


SECRET_KEY = _secret_key()
DEBUG = env.flag(os.environ, "LINKMETER_DEBUG", False)
ALLOWED_HOSTS = env.items(os.environ, "LINKMETER_ALLOWED_HOSTS", ["127.0.0.1", "localhost", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.items(os.environ, "LINKMETER_CSRF_TRUSTED_ORIGINS")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "ninja",  # serves Swagger UI for /api/docs from local static files (the CDN fallback breaks under our CSP)
    "linkmeter.web.links",
    "linkmeter.web.accounts",
    "linkmeter.web.plans",
    "linkmeter.web.ui",
]

# Django's own middleware through linkmeter.web.config.onloop: the same classes with their hooks called on the
# event loop (no thread hop per hook); WhiteNoise asked only for STATIC_URL paths.
MIDDLEWARE = [
    "linkmeter.web.config.onloop.SecurityMiddleware",
    "linkmeter.web.config.onloop.StaticFilesMiddleware",  # WhiteNoise
    "linkmeter.web.config.onloop.SessionMiddleware",
    "linkmeter.web.config.onloop.CommonMiddleware",
    "linkmeter.web.config.onloop.CsrfViewMiddleware",
    "linkmeter.web.config.onloop.AuthenticationMiddleware",
    "linkmeter.web.accounts.middleware.AuthMiddleware",  # request.user / api_key / auth_mode; 401s
    "linkmeter.web.plans.middleware.PlanLimitsMiddleware",  # after every authentication middleware
    "linkmeter.web.config.onloop.MessageMiddleware",
    "linkmeter.web.config.onloop.XFrameOptionsMiddleware",
    "linkmeter.web.config.onloop.ContentSecurityPolicyMiddleware",
]

ROOT_URLCONF = "linkmeter.web.config.urls"
ASGI_APPLICATION = "linkmeter.web.config.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "django.template.context_processors.csp",
            ],
        },
    },
]

DATABASES = {"default": environ.Env().db("DATABASE_URL", default=f"sqlite:///{DATA_DIR / 'linkmeter.sqlite3'}")}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"].setdefault("OPTIONS", {}).update({
        # WAL lets the web requests read while the runner writes; IMMEDIATE avoids lock-upgrade deadlocks.
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA busy_timeout=10000;",
        "transaction_mode": "IMMEDIATE",
    })
    # Tests get a file database too: an in-memory one locks whole tables between threads, unlike production.
    DATABASES["default"]["TEST"] = {"NAME": str(DATA_DIR / "test-linkmeter.sqlite3")}
else:
    # 0 under ASGI: Django runs each request's database code on a new thread, and every thread would keep
    # its own connection open (PostgreSQL runs out of them). `linkmeter worker` (long-lived task threads)
    # sets 60.
    DATABASES["default"].setdefault("CONN_MAX_AGE", env.whole(os.environ, "LINKMETER_DB_CONN_MAX_AGE", 0))
    DATABASES["default"].setdefault("CONN_HEALTH_CHECKS", True)

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
USE_TZ = True
TIME_ZONE = "UTC"
LANGUAGE_CODE = "en"

STATIC_URL = "/static/"
STATIC_ROOT = DATA_DIR / "static"
STATIC_ROOT.mkdir(exist_ok=True)  # empty unless collectstatic runs; WhiteNoise warns if it is missing
WHITENOISE_USE_FINDERS = True  # serve app static files without a collectstatic step (embedded mode)

DATA_UPLOAD_MAX_MEMORY_SIZE = env.whole(os.environ, "LINKMETER_UPLOAD_MAX_BYTES", 5 * 1024 * 1024, positive=True)
FILE_UPLOAD_MAX_MEMORY_SIZE = DATA_UPLOAD_MAX_MEMORY_SIZE

SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
SESSION_COOKIE_AGE = 14 * 24 * 3600
CSRF_COOKIE_SAMESITE = "Strict"
# Behind TLS (LINKMETER_SECURE_COOKIES=1): cookies only over HTTPS, as Django's deployment checklist asks.
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = env.flag(os.environ, "LINKMETER_SECURE_COOKIES", False)
LOGIN_URL = "/accounts/login/"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "/accounts/login/"
# Every asset is served by us (no CDN); no inline script or style, no eval.
SECURE_CSP = {
    "default-src": [CSP.SELF],
    "script-src": [CSP.SELF],
    "style-src": [CSP.SELF],
    "img-src": [CSP.SELF, "data:"],
    "connect-src": [CSP.SELF],
    "font-src": [CSP.SELF],
    "object-src": [CSP.NONE],
    "base-uri": [CSP.SELF],
    "frame-ancestors": [CSP.NONE],
    "form-action": [CSP.SELF],
}

# JSON lines (or text on a terminal) on stderr, with analysis/batch ids; see docs/observability.md.
LOGGING = logging_config(log_format=env.text(os.environ, "LINKMETER_LOG_FORMAT", "auto"),
                         level=env.text(os.environ, "LINKMETER_LOG_LEVEL", "INFO"))

# linkmeter's own limits (docs/architecture.md, "Settings")
LINKMETER: dict[str, Any] = {  # counts and seconds
    "MAX_URLS_PER_REQUEST": env.whole(os.environ, "LINKMETER_MAX_URLS_PER_REQUEST", 1000, positive=True),
    "MAX_URL_LENGTH": env.whole(os.environ, "LINKMETER_MAX_URL_LENGTH", 2048, positive=True),
    "UPLOAD_MAX_ROWS": env.whole(os.environ, "LINKMETER_UPLOAD_MAX_ROWS", 10000, positive=True),
    "MAX_WAIT_SECONDS": 30,
    "RUNNER_CONCURRENCY": env.whole(os.environ, "LINKMETER_RUNNER_CONCURRENCY", 100, positive=True),
    # The embedded runner's watchdog and the Celery mode's (jobs/tasks.py) alike.
    "WATCHDOG_GRACE_SECONDS": env.number(os.environ, "LINKMETER_WATCHDOG_GRACE", 30.0),
    # Deferred cells (links/services/deferred.py): given up after this age (0: nothing is deferred), and how
    # often a refiller looks for them (the embedded runner's loop, the Celery beat task).
    "DEFER_MAX_AGE_SECONDS": env.number(os.environ, "LINKMETER_DEFER_MAX_AGE", 86400.0),
    "DEFER_INTERVAL_SECONDS": env.number(os.environ, "LINKMETER_DEFER_INTERVAL", 5.0, positive=True),
    # The spam model (docs/spam.md): the labelled set a retrain starts from, a retrain every N new labels,
    # how often a process looks for a newly active model or new labels.
    "SPAM_DATA": env.text(os.environ, "LINKMETER_SPAM_DATA", ""),
    "SPAM_RETRAIN_LABELS": env.whole(os.environ, "LINKMETER_SPAM_RETRAIN_LABELS", 200, positive=True),
    "SPAM_REFRESH_SECONDS": env.number(os.environ, "LINKMETER_SPAM_REFRESH_SECONDS", 5.0, positive=True),
}

# Accounts and API keys (docs/api.md, "Authentication"); LINKMETER_AUTH is read by accounts.mode.
_SIGNUP = env.text(os.environ, "LINKMETER_SIGNUP", "off").strip().lower() or "off"
if _SIGNUP not in ("open", "off"):
    raise ValueError(f"LINKMETER_SIGNUP must be open or off, not {_SIGNUP!r}")
ACCOUNTS: dict[str, Any] = {
    "SIGNUP_OPEN": _SIGNUP == "open",
    # The HMAC key of stored API key hashes: changing it invalidates every key.
    "KEY_HASH_SECRET": env.text(os.environ, "LINKMETER_KEY_HASH_SECRET", "") or f"linkmeter-api-keys:{SECRET_KEY}",
    # How long a process reuses a key's record; a revocation is seen at the latest after this.
    "KEY_CACHE_SECONDS": min(5.0, env.number(os.environ, "LINKMETER_KEY_CACHE_SECONDS", 5.0)),
    "AUTH_FAILURES_PER_MINUTE": env.whole(os.environ, "LINKMETER_AUTH_FAILURES_PER_MINUTE", 30, positive=True),
}


def trusted_proxies(environ: Mapping[str, str]) -> list[str]:
    """LINKMETER_TRUSTED_PROXIES: the proxies (addresses or CIDRs) whose X-Forwarded-For names the client; none
    by default, so a client cannot choose the address its failed authentications count against."""
    name = "LINKMETER_TRUSTED_PROXIES"
    networks = []
    for item in env.items(environ, name):
        try:
            networks.append(str(ipaddress.ip_network(item, strict=False)))
        except ValueError as exc:
            raise SettingsError(f"{name}: {item!r} is not an IP address or network (CIDR)") from exc
    return networks


TRUSTED_PROXIES = trusted_proxies(os.environ)

# Callback URLs are checked against the SSRF guard's allow list too (read by the engine's own reader).
FETCH_ALLOW = fetch_allow(os.environ)
