"""Every registered provider has all its parts (emulator, tests, docs section): a missing one fails by name."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from linkmeter.emulator.parts import DNS, WEB, served_providers
from linkmeter.engine.provider import Provider
from linkmeter.providers.registry import INDICATORS, PROVIDERS

ROOT = Path(__file__).resolve().parents[2]
PROVIDERS_DOC = ROOT / "docs" / "providers.md"
SERVED = served_providers()


def by_name(classes: tuple[type[Provider], ...]) -> list[pytest.ParameterSet]:
    return [pytest.param(cls, id=cls.name) for cls in classes]


def docs_section(name: str) -> str | None:
    """The text of ``## <name>`` (e.g. ``## engagement (indicator)``) up to the next ``## `` heading."""
    found = re.search(rf"^## {re.escape(name)}\b[^\n]*\n(.*?)(?=^## |\Z)", PROVIDERS_DOC.read_text(),
                      re.MULTILINE | re.DOTALL)
    return found.group(1) if found else None


@pytest.mark.parametrize("cls", by_name(PROVIDERS))
def test_every_provider_is_served_by_an_emulator_part(cls: type[Provider]) -> None:
    assert cls.name in SERVED, (
        f"provider {cls.name!r} has no emulator part: add src/linkmeter/emulator/apis/{cls.name}.py with "
        f'NAME = "{cls.name}" and routes (see docs/emulator.md), or its zones to emulator/dnsserver.py ZONES')


@pytest.mark.parametrize("cls", by_name(PROVIDERS))
def test_every_provider_has_its_tests(cls: type[Provider]) -> None:
    expected = [ROOT / "tests" / "providers" / f"test_{cls.name}.py"]
    if SERVED.get(cls.name) not in (WEB, DNS, None):
        expected.append(ROOT / "tests" / "emulator" / "apis" / f"test_{cls.name}.py")
    missing = [str(path.relative_to(ROOT)) for path in expected if not path.is_file()]
    assert not missing, f"provider {cls.name!r} has no {' and no '.join(missing)}"


@pytest.mark.parametrize("cls", by_name(INDICATORS))
def test_every_indicator_has_its_tests(cls: type[Provider]) -> None:
    path = ROOT / "tests" / "indicators" / f"test_{cls.name}.py"
    assert path.is_file(), f"indicator {cls.name!r} has no {path.relative_to(ROOT)}"


@pytest.mark.parametrize("cls", by_name(PROVIDERS + INDICATORS))
def test_every_provider_has_its_docs_section_with_every_signal(cls: type[Provider]) -> None:
    section = docs_section(cls.name)
    assert section is not None, f"provider {cls.name!r} has no '## {cls.name}' section in docs/providers.md"
    for part in ("**Inputs.**", "**Policy.**"):
        assert part in section, f"the docs section of {cls.name!r} has no {part} paragraph"
    undocumented = [signal for signal in cls.provides if f"`{signal}`" not in section]
    assert not undocumented, f"the docs section of {cls.name!r} does not describe {', '.join(undocumented)}"
    if SERVED.get(cls.name) not in (WEB, DNS, None):
        assert f"emulator/apis/{cls.name}.py" in section, f"the docs section of {cls.name!r} has no Emulated part"


def test_every_emulated_api_is_a_registered_provider() -> None:
    names = {cls.name for cls in PROVIDERS}
    orphans = sorted(name for name in SERVED if name not in names)
    assert not orphans, f"emulator parts serve {', '.join(orphans)}, which no provider module defines"


def test_the_checklist_ends_the_providers_page() -> None:
    text = PROVIDERS_DOC.read_text()
    last = text[text.rindex("\n## "):]
    assert last.startswith("\n## Adding a provider")
    for part in ("src/linkmeter/providers/<name>.py", "src/linkmeter/emulator/apis/<name>.py",
                 "tests/providers/test_<name>.py", "tests/emulator/apis/test_<name>.py", "## <name>"):
        assert part in last, part
