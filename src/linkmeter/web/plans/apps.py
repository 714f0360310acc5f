"""The plans app."""

from django.apps import AppConfig


class PlansConfig(AppConfig):
    name = "linkmeter.web.plans"
    label = "plans"
    verbose_name = "Plans and usage"
