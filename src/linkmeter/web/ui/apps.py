"""The web UI app."""

from django.apps import AppConfig


class UiConfig(AppConfig):
    name = "linkmeter.web.ui"
    label = "ui"
    verbose_name = "Web UI"
