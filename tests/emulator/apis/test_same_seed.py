"""Every emulated API's answers are a function of the World's seed: two servers of one seed answer alike."""

from __future__ import annotations

import pytest

from linkmeter.emulator.parts import ApiMount, discover_apis
from linkmeter.emulator.world import World
from tests.emulator.apis.conftest import ClientFactory

# One request per API that its World answers (the Reddit one with an agent it does not throttle).
SAMPLES = {
    "hackernews": "/api/v1/search?query=www.site4.com/x",
    "rdap": "/registry/com/domain/site9.com",
    "reddit": "/api/info.json?url=https://www.site2.com/a/2",
    "wayback": "/cdx/search/cdx?url=https://www.site1.com/page&output=json",
}
AGENT = {"User-Agent": "python:linkmeter-tests:0.1 (by /u/linkmeter)"}


@pytest.mark.parametrize("api", discover_apis(), ids=lambda api: api.name)
async def test_answers_are_a_function_of_the_seed(api: ApiMount, aiohttp_client: ClientFactory) -> None:
    assert api.name in SAMPLES, f"add a request the {api.name} API answers from its World to SAMPLES"
    answers = []
    for _ in range(2):
        client = await aiohttp_client(api.create_app(World(1)))
        response = await client.get(SAMPLES[api.name], headers=AGENT)
        assert response.status == 200, await response.text()
        origin = str(client.make_url("")).rstrip("/")
        answers.append((await response.text()).replace(origin, "<server>"))  # self links carry each server's port
    assert answers[0] == answers[1]
