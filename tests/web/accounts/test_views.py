"""The login page counts failed logins per client address as bad API keys are: past the limit a blocked
address gets 429 (even with the right password, which is then not checked); another address logs in."""

from __future__ import annotations

import pytest
from django.test import Client

from linkmeter.web.accounts import authn, services

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("required")]

PASSWORD = "a long enough passphrase"


def test_failed_logins_block_the_address_and_a_bad_key_counts_the_same(client: Client) -> None:
    services.user_create(username="fay", password=PASSWORD)
    authn.verifier().failures.per_minute = 3
    for _ in range(2):
        assert client.post("/accounts/login/", {"username": "fay", "password": "wrong"}).status_code == 200
    assert client.get("/api/v1/providers", HTTP_X_API_KEY="lmk_nope").status_code == 401  # the third failure
    blocked = client.post("/accounts/login/", {"username": "fay", "password": PASSWORD})
    assert blocked.status_code == 429 and int(blocked["Retry-After"]) > 0
    assert b"Too many failed logins" in blocked.content and "_auth_user_id" not in client.session
    elsewhere = Client(REMOTE_ADDR="10.0.0.9").post("/accounts/login/", {"username": "fay", "password": PASSWORD})
    assert elsewhere.status_code == 302
