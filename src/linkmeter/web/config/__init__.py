"""Django configuration: settings from the environment, URLs, the ASGI application."""
