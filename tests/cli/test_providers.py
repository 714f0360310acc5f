"""`linkmeter providers`: the table of the providers page (group, default set, key, key set) in 100 columns."""

from __future__ import annotations

from click.testing import CliRunner

from linkmeter.cli import main
from linkmeter.providers.registry import PROVIDER_CLASSES


def _rows(output: str) -> dict[str, list[str]]:
    names = {cls.name for cls in PROVIDER_CLASSES}
    rows = {}
    for line in output.splitlines():
        cells = line.split()
        if cells and cells[0] in names and cells[0] not in rows:
            rows[cells[0]] = cells
    return rows


def test_the_table_shows_group_default_set_key_and_whether_it_is_set() -> None:
    env = {"LINKMETER_MOZ_API_KEY": "a-key", "LINKMETER_SAFEBROWSING_API_KEY": ""}
    result = CliRunner().invoke(main, ["providers", "--no-signals"], env=env)
    assert result.exit_code == 0, result.output
    rows = _rows(result.output)
    assert set(rows) == {cls.name for cls in PROVIDER_CLASSES}
    assert rows["moz"] == ["moz", "authority", "yes", "required", "yes", "LINKMETER_MOZ_API_KEY"]
    assert rows["safebrowsing"] == ["safebrowsing", "threat", "yes", "required", "no",
                                    "LINKMETER_SAFEBROWSING_API_KEY"]
    assert rows["pagespeed"][2] == "no"  # not in the default set
    assert rows["phishtank"][3:5] == ["optional", "no"]
    assert rows["dns"][3:] == ["none", "-", "-"]
    assert all(len(line) <= 100 for line in result.output.splitlines())


def test_signals_follow_the_table_unless_asked_not_to() -> None:
    with_signals = CliRunner().invoke(main, ["providers"])
    assert "page.status" in with_signals.output and "needs: url" in with_signals.output
    assert all(len(line) <= 100 for line in with_signals.output.splitlines())
    assert "page.status" not in CliRunner().invoke(main, ["providers", "--no-signals"]).output
