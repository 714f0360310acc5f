"""docs/architecture.md "Settings" names every LINKMETER_* variable the code reads, and each is read in one module."""

from __future__ import annotations

import re
from pathlib import Path

from linkmeter.providers.registry import PROVIDER_CLASSES

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT / "src" / "linkmeter"
NAME = re.compile(r"LINKMETER_[A-Z0-9_]*[A-Z0-9]\b")
# Per-provider variables (LINKMETER_<NAME>_...) are documented by their pattern, not one by one.
PROVIDER_PREFIXES = tuple(f"LINKMETER_{cls.name.upper()}_" for cls in PROVIDER_CLASSES)
# Modules that name a variable without parsing it, and why (every other variable is named in one module).
NOT_PARSED_THERE = {
    # "is it set?" before the Celery app is built (accounts.mode: a broker makes keys required)
    "LINKMETER_BROKER_URL": {"web/serve.py", "web/jobs/commands.py", "web/accounts/mode.py"},
    "LINKMETER_DB_CONN_MAX_AGE": {"web/jobs/commands.py"},  # a worker sets it for the Django settings
    "LINKMETER_LOG_LEVEL": {"web/jobs/commands.py"},  # --loglevel sets it for the Django settings
    "LINKMETER_METRICS_PORT": {"web/jobs/supervisor.py"},  # gives worker i the port PORT + i - 1
}


def source_names() -> dict[str, set[str]]:
    """Each variable named as a string literal in the product (not the bench, not the emulator, which build
    environments for the processes they start) -> the modules naming it."""
    found: dict[str, set[str]] = {}
    for path in SOURCE.rglob("*.py"):
        module = path.relative_to(SOURCE).as_posix()
        if module.startswith(("bench/", "emulator/")):
            continue
        for name in re.findall(r'"(LINKMETER_[A-Z0-9_]*[A-Z0-9])"', path.read_text()):
            if not name.startswith(PROVIDER_PREFIXES):
                found.setdefault(name, set()).add(module)
    return found


def documented_names() -> set[str]:
    text = (ROOT / "docs" / "architecture.md").read_text()
    section = text[text.index("## Settings (environment)"):text.index("## The shared HTTP client")]
    return {name for name in NAME.findall(section) if not name.startswith(PROVIDER_PREFIXES)}


def test_every_variable_the_code_names_is_in_the_settings_table() -> None:
    everywhere = {name for path in SOURCE.rglob("*.py") for name in NAME.findall(path.read_text())
                  if not name.startswith(PROVIDER_PREFIXES)}
    assert everywhere - documented_names() == set()


def test_every_variable_in_the_settings_table_is_read_by_the_code() -> None:
    everywhere = {name for path in SOURCE.rglob("*.py") for name in NAME.findall(path.read_text())}
    assert documented_names() - everywhere == set()


def test_each_variable_is_parsed_in_one_module() -> None:
    spread = {name: modules - NOT_PARSED_THERE.get(name, set()) for name, modules in source_names().items()}
    assert {name: modules for name, modules in spread.items() if len(modules) != 1} == {}
