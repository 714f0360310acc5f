"""The links app."""

from django.apps import AppConfig


class LinksConfig(AppConfig):
    name = "linkmeter.web.links"
    label = "links"
    verbose_name = "Links"
