"""The emulated PageSpeed Insights: the result's structure, Lighthouse scoring, CrUX data for popular sites
only, keys, parameters and Google's error envelopes."""

from __future__ import annotations

import statistics
from collections.abc import Callable
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from linkmeter.emulator.apis import pagespeed as psi_api
from linkmeter.emulator.parts import api_app
from linkmeter.emulator.world import World
from tests.emulator.apis.conftest import ClientFactory

API = psi_api
SEED = 3
PATH = psi_api.PATH


@pytest.fixture(autouse=True)
def no_analysis_delay(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(psi_api, "DELAY_SCALE", 0.0)


async def run(client: TestClient[Any, Any], url: str, **params: str) -> dict[str, Any]:
    response = await client.get(PATH, params={"url": url, "key": psi_api.DEMO_KEY, **params})
    assert response.status == 200, await response.text()
    body: dict[str, Any] = await response.json()
    return body


def domain_with(world: World, predicate: Callable[[float], bool]) -> str:
    for i in range(3000):
        facts = world.domain(f"site{i}.net")
        if facts.registered and not facts.spam and predicate(facts.popularity):
            return f"site{i}.net"
    raise AssertionError("no such domain")


async def error(client: TestClient[Any, Any], status: int, **params: str) -> dict[str, Any]:
    response = await client.get(PATH, params=params)
    assert response.status == status
    body: dict[str, Any] = (await response.json())["error"]
    assert body["code"] == status and body["errors"][0]["message"] == body["message"]
    return body


async def test_a_result_in_psis_structure(client: TestClient[Any, Any], world: World) -> None:
    url = f"http://{domain_with(world, lambda p: p < 0.1)}/a/1"

    body = await run(client, url, strategy="mobile", category="performance")

    assert body["kind"] == "pagespeedonline#result" and body["captchaResult"] == "CAPTCHA_NOT_NEEDED"
    assert "loadingExperience" not in body and "originLoadingExperience" not in body  # too little traffic
    result = body["lighthouseResult"]
    assert result["requestedUrl"] == url and result["finalUrl"] == "https://" + url[7:] == body["id"]
    assert result["configSettings"]["formFactor"] == "mobile" and result["fetchTime"].endswith("Z")
    audits = result["audits"]
    for audit in psi_api.SCORING["mobile"]:
        assert {"id", "title", "score", "numericValue", "numericUnit", "displayValue"} <= audits[audit].keys()
        assert 0 <= audits[audit]["score"] <= 1
    expected = sum(audits[a]["score"] * w for a, (_, _, w) in psi_api.SCORING["mobile"].items())
    assert result["categories"]["performance"]["score"] == round(expected, 2)
    assert audits["cumulative-layout-shift"]["numericUnit"] == "unitless"
    assert audits["largest-contentful-paint"]["numericUnit"] == "millisecond"


def test_lighthouse_log_normal_scoring() -> None:
    assert psi_api.metric_score(2500, 2500, 4000) == pytest.approx(0.9)
    assert psi_api.metric_score(4000, 2500, 4000) == pytest.approx(0.5)
    assert psi_api.metric_score(0, 2500, 4000) == 1.0
    assert psi_api.metric_score(20000, 2500, 4000) < 0.01


async def test_desktop_is_the_default_strategy_and_faster(client: TestClient[Any, Any], world: World) -> None:
    url = f"https://{domain_with(world, lambda p: True)}/"

    default = await run(client, url)
    mobile = await run(client, url, strategy="mobile")

    assert default["lighthouseResult"]["configSettings"]["formFactor"] == "desktop"
    lcp = {name: body["lighthouseResult"]["audits"]["largest-contentful-paint"]["numericValue"]
           for name, body in (("desktop", default), ("mobile", mobile))}
    assert lcp["desktop"] < lcp["mobile"]


async def test_field_data_for_popular_sites_only(client: TestClient[Any, Any], world: World) -> None:
    popular = await run(client, f"https://{domain_with(world, lambda p: p >= 0.6)}/a/2")
    middling = await run(client, f"https://{domain_with(world, lambda p: 0.25 <= p < 0.6)}/a/2")

    assert "origin_fallback" not in popular["loadingExperience"]
    assert middling["loadingExperience"]["origin_fallback"] is True
    for body in (popular, middling):
        experience = body["loadingExperience"]
        assert experience["overall_category"] in ("FAST", "AVERAGE", "SLOW")
        assert body["originLoadingExperience"]["id"].count("/") == 2  # an origin
        for name, metric in experience["metrics"].items():
            good, poor = psi_api.FIELD_THRESHOLDS[name]
            expected = "FAST" if metric["percentile"] <= good else "AVERAGE" if metric["percentile"] <= poor \
                else "SLOW"
            assert metric["category"] == expected and isinstance(metric["percentile"], int)
            assert sum(d["proportion"] for d in metric["distributions"]) == pytest.approx(1, abs=0.001)


def test_spam_pages_are_slower(world: World) -> None:
    def lcp(host: str) -> float:
        return psi_api.lab_metrics(world, f"https://{host}/x", "mobile")["largest-contentful-paint"]

    spam = [lcp(f"spam{i}.example") for i in range(60)]
    clean = [lcp(f"site{i}.org") for i in range(60) if not world.domain(f"site{i}.org").spam]

    assert statistics.median(spam) > 1.3 * statistics.median(clean)


async def test_the_key_may_be_a_parameter_or_a_header(client: TestClient[Any, Any]) -> None:
    by_header = await client.get(PATH, params={"url": "https://site1.net/"},
                                 headers={"X-Goog-Api-Key": psi_api.DEMO_KEY})

    assert by_header.status == 200


async def test_key_errors(client: TestClient[Any, Any]) -> None:
    missing = await error(client, 429, url="https://site1.net/")
    wrong = await error(client, 400, url="https://site1.net/", key="AIzaSyNotTheDemoKey")

    assert missing["status"] == "RESOURCE_EXHAUSTED" and "project_number:583797351490" in missing["message"]
    assert wrong["message"] == "API key not valid. Please pass a valid API key."
    assert wrong["details"][0]["reason"] == "API_KEY_INVALID"


async def test_parameter_errors(client: TestClient[Any, Any]) -> None:
    key = psi_api.DEMO_KEY
    assert (await error(client, 400, key=key))["message"] == "Required parameter: url"
    assert "strategy" in (await error(client, 400, key=key, url="https://a.example/", strategy="tablet"))["message"]
    assert (await error(client, 400, key=key, url="not a url"))["status"] == "INVALID_ARGUMENT"
    dns = await error(client, 400, key=key, url="https://unregistered-shop.com/")
    assert dns["message"].startswith("Lighthouse returned error: DNS_FAILURE")
    assert dns["errors"][0] == {"message": dns["message"], "domain": "lighthouse", "reason": "lighthouseUserError"}


def test_knob_answers_are_google_envelopes() -> None:
    assert psi_api.rate_limited_response(5).status == 429
    assert "RESOURCE_EXHAUSTED" in str(psi_api.rate_limited_response(5).text)
    assert "Unable to process request" in str(psi_api.error_response(500).text)
    assert '"UNAVAILABLE"' in str(psi_api.error_response(503).text)


def test_a_run_takes_seconds_scaled_by_the_module_constant(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(psi_api, "DELAY_SCALE", 1.0)
    delays = [psi_api.analysis_seconds(world, f"https://site{i}.net/", "mobile") for i in range(50)]
    monkeypatch.setattr(psi_api, "DELAY_SCALE", 0.5)
    halved = [psi_api.analysis_seconds(world, f"https://site{i}.net/", "mobile") for i in range(50)]

    assert all(psi_api.ANALYSIS_SECONDS[0] <= d <= psi_api.ANALYSIS_SECONDS[1] for d in delays)
    assert halved == [d / 2 for d in delays]


async def test_answers_depend_only_on_the_seed(aiohttp_client: ClientFactory) -> None:
    url = "https://site7.net/page"
    one = await run(await aiohttp_client(api_app(psi_api, World(3))), url)
    again = await run(await aiohttp_client(api_app(psi_api, World(3))), url)
    other = await run(await aiohttp_client(api_app(psi_api, World(4))), url)

    assert one == again != other
