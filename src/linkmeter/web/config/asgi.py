"""The ASGI application (served by uvicorn from `linkmeter serve`)."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "linkmeter.web.config.settings")
application = get_asgi_application()
