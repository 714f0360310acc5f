"""Shared pieces of the spam tests: the shipped model, a fixed clock and benign URLs it does not flag."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from linkmeter.indicators.spam import model
from linkmeter.indicators.spam.model import Artifact

NOW = datetime(2026, 12, 1, tzinfo=UTC)
WORDS = ["garden", "recipes", "travel", "photo", "music", "yoga", "coffee", "books", "design", "studio", "family",
         "bakery", "craft", "hiking", "poetry", "chess", "robot", "school", "club", "portfolio"]


@pytest.fixture(scope="session")
def shipped() -> Artifact:
    return model.load_shipped()


def benign_urls(count: int, seed: int = 0) -> list[str]:
    """Plain pages of made-up small sites: the kind of link most people submit."""
    import random

    rng = random.Random(seed)
    tlds = ["com", "org", "net", "de", "fr", "co.uk", "io", "nl"]
    paths = ["", "about", "contact", "blog/2024/05/spring-recipes", "products/garden-chairs", "team", "events"]
    return [f"https://{rng.choice(WORDS)}{rng.choice(WORDS)}.{rng.choice(tlds)}/{rng.choice(paths)}"
            for _ in range(count)]
