"""One source of an account's plan: `linkmeter user create --plan` and `set-plan` write its AccountPlan, and the
CLI's list, the admin, the usage page and GET /api/v1/usage all show that plan; an unknown plan creates or
changes nothing."""

from __future__ import annotations

import json

import pytest
from django.contrib import admin
from django.contrib.auth.models import User
from django.test import Client

from linkmeter.web.accounts.services import key_create, local_owner, user_create
from linkmeter.web.links.services.errors import ServiceError
from linkmeter.web.plans import commands
from linkmeter.web.plans.admin import AccountPlanInline, PlanUserAdmin
from linkmeter.web.plans.models import AccountPlan
from linkmeter.web.plans.selectors.plans import plan_for
from tests.web.plans.conftest import seed_plans

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def plans() -> None:
    seed_plans()


def listed_plans(capsys: pytest.CaptureFixture[str]) -> dict[str, str]:
    commands.user_list(as_json=True)
    return {row["username"]: row["plan"] for row in json.loads(capsys.readouterr().out)}


def usage_plan(user: User) -> str:
    _, secret = key_create(user=user, name="tests")
    answer = Client(headers={"Authorization": f"Bearer {secret}"}).get("/api/v1/usage")
    assert answer.status_code == 200
    return str(answer.json()["plan"]["code"])


def test_set_plan_is_what_every_reader_shows(capsys: pytest.CaptureFixture[str],
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LINKMETER_AUTH", "required")
    commands.user_create(username="ada", password=None, email="", plan="free", admin=False)
    ada = User.objects.get(username="ada")
    assert AccountPlan.objects.get(user=ada).plan.code == "free"
    commands.user_set_plan(username="ada", plan="pro")
    assert "user ada is on plan pro" in capsys.readouterr().out
    assert AccountPlan.objects.get(user=ada).plan.code == "pro"
    assert plan_for(ada).code == "pro"
    assert listed_plans(capsys)["ada"] == "pro"
    assert PlanUserAdmin(User, admin.site).plan(ada) == "pro"
    assert usage_plan(ada) == "pro"
    client = Client()
    client.force_login(ada)
    assert "on the <strong>Pro</strong> plan" in client.get("/usage/").content.decode()


def test_an_unknown_plan_creates_no_user_and_changes_no_plan() -> None:
    with pytest.raises(ServiceError) as refused:
        commands.user_create(username="bo", password=None, email="", plan="gold", admin=False)
    assert refused.value.code == "unknown_plan" and not User.objects.filter(username="bo").exists()
    commands.user_create(username="bo", password=None, email="", plan="pro", admin=False)
    with pytest.raises(ServiceError):
        commands.user_set_plan(username="bo", plan="gold")
    assert plan_for(User.objects.get(username="bo")).code == "pro"


def test_without_a_row_the_defaults_agree_everywhere(capsys: pytest.CaptureFixture[str]) -> None:
    plain = user_create(username="cy", password=None)  # e.g. a self sign-up
    owner = local_owner()
    model_admin = PlanUserAdmin(User, admin.site)
    assert (plan_for(plain).code, model_admin.plan(plain)) == ("free", "free")
    assert (plan_for(owner).code, model_admin.plan(owner)) == ("unlimited", "unlimited")
    assert listed_plans(capsys) == {"cy": "free", owner.username: "unlimited"}


def test_the_admin_sets_the_plan_on_the_users_own_page(admin_client: Client) -> None:
    assert isinstance(admin.site._registry[User], PlanUserAdmin)
    assert AccountPlanInline in PlanUserAdmin.inlines
    user = user_create(username="dee", password=None)
    page = admin_client.get(f"/admin/auth/user/{user.pk}/change/")
    assert page.status_code == 200 and b"account_plan-0-plan" in page.content
