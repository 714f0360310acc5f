"""The accounts app: every user gets an Account when created."""

from __future__ import annotations

from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "linkmeter.web.accounts"
    label = "accounts"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.contrib.auth import get_user_model
        from django.db.models.signals import post_save

        from linkmeter.web.accounts.services import account_for_new_user

        post_save.connect(account_for_new_user, sender=get_user_model(), dispatch_uid="linkmeter-account")
