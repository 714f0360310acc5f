"""The accounts pages' forms: sign-up and a new API key."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib.auth.forms import UserCreationForm
from django.contrib.auth.models import User

from linkmeter.web.accounts.models import ALL_SCOPES


class SignupForm(UserCreationForm[User]):
    class Meta(UserCreationForm.Meta):
        model = User
        fields = ("username", "email")


class KeyForm(forms.Form):
    name = forms.CharField(max_length=100, help_text="What the key is for, e.g. 'nightly export'.")
    scopes = forms.MultipleChoiceField(choices=[(s, s) for s in ALL_SCOPES], initial=ALL_SCOPES,
                                       widget=forms.CheckboxSelectMultiple,
                                       help_text="read: GET calls; submit: POST calls.")
    expires_in_days = forms.IntegerField(min_value=1, max_value=3650, required=False,
                                         help_text="Empty: never expires.")

    def clean(self) -> dict[str, Any]:
        return super().clean() or {}
