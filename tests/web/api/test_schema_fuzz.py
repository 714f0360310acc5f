"""The REST API fuzzed from its own OpenAPI schema (schemathesis) with an API key, as on a public address
(LINKMETER_AUTH=required): whatever the generated paths, queries and bodies, no answer is a server error, and
the key is accepted everywhere (no 401)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import schemathesis
from django.core.wsgi import get_wsgi_application
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error

from linkmeter.web import runtime
from linkmeter.web.accounts import authn
from linkmeter.web.runtime import Runtime
from tests.web.accounts.conftest import Holder, holder
from tests.web.api.conftest import CompletingDispatcher
from tests.web.conftest import run_spam_job
from tests.web.plans.conftest import make_plan

EXAMPLES = 20  # per operation: enough to reach every parameter's edges, short enough for the suite


@pytest.fixture
def keyed(transactional_db: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[Holder]:
    """Transactional: the WSGI handler closes the connection after each request, as in production (Django's
    test client keeps it for the test's transaction; schemathesis calls the WSGI application itself).
    An account with a read+submit key on a plan whose limits the fuzzing does not reach (a 429 would hide
    the handlers behind it), required mode, and analyses that finish as soon as they are submitted."""
    from linkmeter.web.plans.models import AccountPlan

    monkeypatch.setenv("LINKMETER_AUTH", "required")
    authn.reset()
    fuzzer = holder("fuzzer")
    AccountPlan.objects.create(user=fuzzer.user, plan=make_plan(
        "fuzz", rate_per_second=100_000, rate_per_minute=1_000_000, daily_urls=1_000_000, monthly_urls=10_000_000,
        max_batch=1000, max_in_flight=1_000_000))
    runtime.install(Runtime(dispatcher=CompletingDispatcher(), spam_jobs=run_spam_job))  # spam jobs in-line
    yield fuzzer
    authn.reset()


def test_no_server_error_with_a_key(keyed: Holder) -> None:
    schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", get_wsgi_application())
    headers = {"Authorization": f"Bearer {keyed.secret}"}
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) > 10, "the schema lists the API's operations"
    for operation in operations:  # one Hypothesis run per operation (the pytest plugin's parametrize, by hand)

        @given(case=operation.as_strategy())
        @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def fuzz(case: schemathesis.Case) -> None:
            response = case.call_and_validate(headers=headers, checks=[not_a_server_error])
            assert response.status_code != 401, f"{case.operation.label}: {response.text}"

        fuzz()
