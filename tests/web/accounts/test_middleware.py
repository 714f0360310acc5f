"""Who may call: in required mode every API call needs a key (Bearer or X-API-Key), a UI page a login; a key
in the query string is refused and never logged; a malformed key costs no query; local mode needs nothing."""

from __future__ import annotations

import json
import logging
from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.utils import timezone

from linkmeter.web.accounts import authn, services
from linkmeter.web.accounts.models import ApiKey
from linkmeter.web.links.models import Batch, BatchItem
from linkmeter.web.plans.selectors.plans import plan_for
from tests.web.accounts.conftest import Holder, holder

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("required")]


def submit(client: Client, who: Holder, urls: list[str]) -> int:
    response = client.post("/api/v1/analyses", json.dumps({"urls": urls}), content_type="application/json",
                           **who.headers())
    assert response.status_code == 202, response.content
    batch_id: int = response.json()["batch_id"]
    return batch_id


def test_an_api_call_without_a_key_is_401_with_a_code(client: Client) -> None:
    response = client.get("/api/v1/providers")
    assert response.status_code == 401
    assert response.json()["code"] == "authentication_required"
    assert response["WWW-Authenticate"] == "Bearer"


def test_a_key_works_as_bearer_and_as_x_api_key(client: Client, alice: Holder) -> None:
    batch_id = submit(client, alice, ["https://example.org/a"])
    assert client.get(f"/api/v1/batches/{batch_id}", HTTP_AUTHORIZATION=f"Bearer {alice.secret}").status_code == 200
    assert client.get(f"/api/v1/batches/{batch_id}", HTTP_X_API_KEY=alice.secret).status_code == 200
    assert Batch.objects.get(pk=batch_id).owner_id == alice.user.pk


def test_another_accounts_batch_analysis_and_link_are_404(client: Client, alice: Holder, bob: Holder) -> None:
    batch_id = submit(client, alice, ["https://example.org/private"])
    item = BatchItem.objects.select_related("analysis").get(batch_id=batch_id)
    assert client.get(f"/api/v1/analyses/{item.analysis_id}", **alice.headers()).status_code == 200
    for path in (f"/api/v1/batches/{batch_id}", f"/api/v1/batches/{batch_id}/results",
                 f"/api/v1/analyses/{item.analysis_id}", f"/api/v1/links/{item.analysis.link_id}/history",
                 "/api/v1/links?url=https://example.org/private"):
        response = client.get(path, **bob.headers())
        assert response.status_code == 404, path
        assert response.json()["code"] == "not_found"
    assert client.get(f"/api/v1/batches/{batch_id + 1000}", **bob.headers()).json() == \
        client.get(f"/api/v1/batches/{batch_id + 1000}", **alice.headers()).json()  # missing looks the same


def test_the_same_url_from_two_accounts_shows_each_only_its_own_batch(client: Client, alice: Holder,
                                                                       bob: Holder) -> None:
    mine = submit(client, alice, ["https://example.org/shared"])
    theirs = submit(client, bob, ["https://example.org/shared"])
    assert client.get(f"/api/v1/batches/{theirs}", **alice.headers()).status_code == 404
    assert client.get(f"/api/v1/batches/{mine}", **bob.headers()).status_code == 404


def test_a_key_in_the_query_string_is_400_and_never_logged(client: Client, alice: Holder,
                                                           caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    for query in (f"api_key={alice.secret}", f"format=csv&x={alice.secret}", "key=something-secret"):
        response = client.get(f"/api/v1/batches/1?{query}", **alice.headers())
        assert response.status_code == 400
        assert response.json()["code"] == "key_in_query"
    assert alice.secret not in caplog.text
    assert "something-secret" not in caplog.text
    assert alice.secret.split("_")[2] not in caplog.text


def test_a_malformed_key_is_refused_with_no_database_query(client: Client, alice: Holder,
                                                           django_assert_num_queries: object) -> None:
    broken = alice.secret[:-1] + ("A" if alice.secret[-1] != "A" else "B")
    with django_assert_num_queries(0):  # type: ignore[operator]
        response = client.get("/api/v1/providers", HTTP_AUTHORIZATION=f"Bearer {broken}")
    assert response.status_code == 401
    assert response.json()["code"] == "malformed_key"


def test_an_unknown_id_and_a_wrong_secret_answer_alike(client: Client, alice: Holder) -> None:
    from linkmeter.web.accounts import keys

    unknown, _ = keys.generate()
    body = alice.key.id_public + "_" + "x" * keys.SECRET_LENGTH
    wrong = body + keys.checksum(body)
    answers = [client.get("/api/v1/providers", HTTP_X_API_KEY=k) for k in (unknown, wrong)]
    assert [a.status_code for a in answers] == [401, 401]
    assert answers[0].json() == answers[1].json()


def test_a_revoked_key_stops_at_once_in_this_process(client: Client, alice: Holder) -> None:
    assert client.get("/api/v1/providers", **alice.headers()).status_code == 200
    services.key_revoke(key=alice.key)
    response = client.get("/api/v1/providers", **alice.headers())
    assert (response.status_code, response.json()["code"]) == (401, "key_revoked")
    assert response.json()["details"] == {"key_id": alice.key.id_public}


def test_an_expired_key_and_a_disabled_account_are_refused(client: Client, alice: Holder, bob: Holder) -> None:
    ApiKey.objects.filter(pk=alice.key.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert client.get("/api/v1/providers", **alice.headers()).json()["code"] == "key_expired"
    services.user_disable(user=bob.user)
    assert client.get("/api/v1/providers", **bob.headers()).json()["code"] == "account_disabled"


def test_scopes_read_and_submit(client: Client) -> None:
    reader = holder("reader", scopes=["read"])
    response = client.post("/api/v1/analyses", json.dumps({"urls": ["https://example.org/"]}),
                           content_type="application/json", **reader.headers())
    assert (response.status_code, response.json()["code"]) == (403, "insufficient_scope")
    assert client.get("/api/v1/providers", **reader.headers()).status_code == 200


def test_failed_authentication_is_limited_per_address_not_per_account(client: Client, alice: Holder) -> None:
    authn.verifier().failures.per_minute = 3
    for _ in range(3):
        assert client.get("/api/v1/providers", HTTP_X_API_KEY="lmk_nope").status_code == 401
    blocked = client.get("/api/v1/providers", **alice.headers())
    assert (blocked.status_code, blocked.json()["code"]) == (429, "auth_rate_limited")
    assert int(blocked["Retry-After"]) > 0
    elsewhere = client.get("/api/v1/providers", REMOTE_ADDR="10.0.0.9", **alice.headers())
    assert elsewhere.status_code == 200


def test_last_used_is_written(client: Client, alice: Holder) -> None:
    assert client.get("/api/v1/providers", **alice.headers()).status_code == 200
    assert ApiKey.objects.get(pk=alice.key.pk).last_used_at is not None


def test_ui_pages_need_a_login_and_the_session_may_read_the_api(client: Client) -> None:
    assert client.get("/").status_code == 302
    assert client.get("/")["Location"].startswith("/accounts/login/?next=/")
    services.user_create(username="carol", password="a long enough passphrase")
    response = client.post("/accounts/login/", {"username": "carol", "password": "a long enough passphrase"})
    assert response.status_code == 302
    home = client.get("/")
    assert home.status_code == 200
    assert b"carol" in home.content and b"Log out" in home.content
    assert client.get("/api/v1/providers").status_code == 200  # a logged-in browser reads (export links)
    write = client.post("/api/v1/analyses", json.dumps({"urls": ["https://example.org/"]}),
                        content_type="application/json")
    assert write.status_code == 401  # writes need a key: no CSRF-less session writes
    client.post("/accounts/logout/")
    assert client.get("/").status_code == 302


def test_login_and_password_change_are_csrf_protected(alice: Holder) -> None:
    strict = Client(enforce_csrf_checks=True)
    services.user_create(username="dave", password="a long enough passphrase")
    assert strict.post("/accounts/login/", {"username": "dave", "password": "a long enough passphrase"}) \
        .status_code == 403


def test_a_key_made_on_the_keys_page_is_shown_once_and_never_stored(client: Client) -> None:
    user = services.user_create(username="erin", password="a long enough passphrase")
    client.force_login(user)
    page = client.post("/accounts/keys/", {"name": "export", "scopes": ["read", "submit"]})
    assert page.status_code == 200 and page["Cache-Control"] == "no-store"
    key = ApiKey.objects.get(user=user)
    full = page.content.decode().split('id="new-key-value">')[1].split("<")[0]
    assert full.startswith(key.id_public + "_")
    assert full not in client.get("/accounts/keys/").content.decode()
    assert client.get("/api/v1/providers", HTTP_X_API_KEY=full).status_code == 200
    secret = full.split("_", 2)[2]
    assert all(secret not in str(value) for row in ApiKey.objects.values() for value in row.values())


def test_local_mode_needs_nothing_and_says_so(monkeypatch: pytest.MonkeyPatch, client: Client) -> None:
    monkeypatch.setenv("LINKMETER_AUTH", "auto")
    home = client.get("/")
    assert home.status_code == 200 and b"Local mode: no login" in home.content
    response = client.post("/api/v1/analyses", json.dumps({"urls": ["https://example.org/"]}),
                           content_type="application/json")
    assert response.status_code == 202
    owner = User.objects.get(account__is_local_owner=True)
    assert plan_for(owner).code == "unlimited"  # the plans app's rule for a local owner with no plan row
    assert Batch.objects.get(pk=response.json()["batch_id"]).owner_id == owner.pk
