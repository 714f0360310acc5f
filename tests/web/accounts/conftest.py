"""Fixtures for the accounts tests: required mode (as on a public address), users and keys."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from django.contrib.auth.models import User

from linkmeter.web.accounts import authn, services
from linkmeter.web.accounts.models import ApiKey


@pytest.fixture(autouse=True)
def fresh_verifier() -> Iterator[None]:
    """Each test starts with an empty key cache and failure counts (they live as long as a process)."""
    authn.reset()
    yield
    authn.reset()


@pytest.fixture
def required(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LINKMETER_AUTH", "required")


@dataclass
class Holder:
    user: User
    key: ApiKey
    secret: str  # the full key, as shown once

    def headers(self) -> dict[str, str]:
        return {"HTTP_AUTHORIZATION": f"Bearer {self.secret}"}


def holder(username: str, scopes: list[str] | None = None) -> Holder:
    user = services.user_create(username=username, password=None)
    key, full = services.key_create(user=user, name=f"{username}'s key", scopes=scopes)
    return Holder(user, key, full)


@pytest.fixture
def alice(db: None) -> Holder:
    return holder("alice")


@pytest.fixture
def bob(db: None) -> Holder:
    return holder("bob")
