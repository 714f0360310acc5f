"""The ASGI application (served by uvicorn from `linkmeter serve`): Django's, with its thread hops removed
where nothing needs a thread (linkmeter.web.config.onloop)."""

import os

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "linkmeter.web.config.settings")
django.setup(set_prefix=False)  # as django.core.asgi.get_asgi_application does

from linkmeter.web.config.onloop import ASGIHandler  # noqa: E402  (needs the settings)

application = ASGIHandler()
