"""Every emulated API's answers are a function of the World's seed: two servers of one seed answer alike."""

from __future__ import annotations

import pytest

from linkmeter.emulator.apis import Sample
from linkmeter.emulator.parts import ApiMount, discover_apis
from linkmeter.emulator.world import World
from tests.emulator.apis.conftest import ClientFactory


@pytest.mark.parametrize("api", discover_apis(), ids=lambda api: api.name)
async def test_answers_are_a_function_of_the_seed(api: ApiMount, aiohttp_client: ClientFactory) -> None:
    make_sample = getattr(api.module, "sample", None)
    assert callable(make_sample), f"the {api.name} API has no sample(world) request (see linkmeter.emulator.apis)"
    answers = []
    for _ in range(2):
        world = World(1)
        sample: Sample = make_sample(world)
        client = await aiohttp_client(api.create_app(world))
        response = await client.request(sample.method, sample.path, headers=dict(sample.headers),
                                        data=dict(sample.data) if sample.data is not None else None,
                                        json=sample.json)
        assert response.status == 200, await response.text()
        origin = str(client.make_url("")).rstrip("/")
        answers.append((await response.text()).replace(origin, "<server>"))  # self links carry each server's port
    assert answers[0] == answers[1]
