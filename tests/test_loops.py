"""The event loop choice: uvloop by default where installed, asyncio on request, clear errors otherwise."""

from __future__ import annotations

import asyncio
import builtins
from typing import Any

import pytest
from click.testing import CliRunner

from linkmeter import loops
from linkmeter.cli import main


def test_auto_and_uvloop_run_on_uvloop_and_asyncio_on_the_standard_loop() -> None:
    async def which() -> str:
        return loops.loop_name(asyncio.get_running_loop())

    for choice, expected in [("auto", "uvloop"), ("uvloop", "uvloop"), ("asyncio", "asyncio"), (" UVLOOP ", "uvloop")]:
        factory = loops.loop_factory({"LINKMETER_EVENT_LOOP": choice})
        assert asyncio.run(which(), loop_factory=factory) == expected, choice
    assert loops.loop_name(loops.loop_factory({})()) == "uvloop"


def test_an_unknown_loop_is_refused_by_name() -> None:
    with pytest.raises(loops.LoopSettingError, match="LINKMETER_EVENT_LOOP must be one of auto, uvloop, asyncio"):
        loops.loop_factory({"LINKMETER_EVENT_LOOP": "trio"})


def test_without_uvloop_auto_falls_back_and_uvloop_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    real_import = builtins.__import__

    def no_uvloop(name: str, *args: Any, **kwargs: Any) -> Any:
        if name == "uvloop":
            raise ImportError("no uvloop here")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_uvloop)
    assert loops.loop_factory({"LINKMETER_EVENT_LOOP": "auto"}) is asyncio.new_event_loop
    with pytest.raises(loops.LoopSettingError, match="not installed"):
        loops.loop_factory({"LINKMETER_EVENT_LOOP": "uvloop"})


def test_the_cli_stops_with_a_usage_error_on_a_bad_loop_setting() -> None:
    result = CliRunner().invoke(main, ["providers"], env={"LINKMETER_EVENT_LOOP": "trio"})
    assert result.exit_code == 2
    assert "LINKMETER_EVENT_LOOP must be one of" in result.output
