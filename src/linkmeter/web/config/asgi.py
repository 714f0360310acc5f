"""The ASGI application (served by uvicorn from `linkmeter serve`)."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "linkmeter.web.config.settings")
application = get_asgi_application()

from linkmeter.web.config.onloop import connection_signals_on_loop  # noqa: E402  (needs the settings loaded)

connection_signals_on_loop()
