"""`linkmeter spam ...`: labels from a CSV (bad rows by line, the rest stored), evaluate's figures, models,
promote and rollback through the command line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from linkmeter.cli import main
from linkmeter.web.links.models import Feedback, SpamModel
from linkmeter.web.links.services import spam_learning

pytestmark = pytest.mark.django_db(transaction=True)

KEYS = {"n", "positives", "roc_auc", "pr_auc", "recall_at_1pct_fpr", "precision_at_threshold",
        "recall_at_threshold", "brier"}


def write(path: Path, text: str) -> str:
    path.write_text(text, encoding="utf-8")
    return str(path)


def test_label_stores_good_rows_reports_bad_ones_by_line_and_exits_1(tmp_path: Path) -> None:
    csv_file = write(tmp_path / "labels.csv", "url,label\nhttps://example.org/a,spam\nnot a url,spam\n"
                                              "https://example.org/b,perhaps\n,ham\nhttps://example.net/,ham\n")
    result = CliRunner().invoke(main, ["spam", "label", csv_file, "--labeller", "ops"])
    assert result.exit_code == 1, result.output
    assert "line 3:" in result.stderr and "line 4:" in result.stderr and "line 5:" in result.stderr
    assert "2 labels stored" in result.stdout
    assert sorted(Feedback.objects.values_list("link__url", "label", "source", "labeller")) == [
        ("https://example.net/", "ham", "cli", "cli:ops"), ("https://example.org/a", "spam", "cli", "cli:ops")]


def test_label_refuses_a_file_without_the_columns(tmp_path: Path) -> None:
    csv_file = write(tmp_path / "labels.csv", "link,verdict\nhttps://example.org/a,spam\n")
    result = CliRunner().invoke(main, ["spam", "label", csv_file])
    assert result.exit_code == 2 and "no column 'url'" in result.output


def test_evaluate_prints_every_figure_as_json(tmp_path: Path) -> None:
    rows = ["address,status"]
    rows += [f"http://secure-login-verify{i}.xyz/account/update.php?id={i},phishing" for i in range(20)]
    rows += [f"https://www.{name}.org/,legitimate" for name in ("python", "wikipedia", "debian", "mozilla",
                                                                "apache", "gnu", "kernel", "postgresql")]
    csv_file = write(tmp_path / "eval.csv", "\n".join(rows) + "\n")
    result = CliRunner().invoke(main, ["spam", "evaluate", "--labels", csv_file, "--url-column", "address",
                                       "--label-column", "status", "--positive", "phishing", "--json"])
    assert result.exit_code == 0, result.output
    figures = json.loads(result.stdout)
    assert figures.keys() >= KEYS
    assert (figures["n"], figures["positives"], figures["model"], figures["with_signals"]) == (28, 20, 1, 0)
    assert 0 <= figures["brier"] <= 1 and 0 <= figures["roc_auc"] <= 1


def test_models_promote_and_rollback(tmp_path: Path) -> None:
    first = spam_learning.spam_model_active()
    SpamModel.objects.create(version=2, parent=first, algorithm=first.algorithm, artifact=first.artifact.replace(
        '"version": "1"', '"version": "2"', 1), check_passed=True, check_message="passed")
    runner = CliRunner()
    listed = runner.invoke(main, ["spam", "models", "--json"])
    assert [(m["version"], m["active"]) for m in json.loads(listed.stdout)] == [(2, False), (1, True)]
    assert runner.invoke(main, ["spam", "promote", "2"]).exit_code == 0
    assert SpamModel.objects.get(active=True).version == 2
    back = runner.invoke(main, ["spam", "rollback"])
    assert back.exit_code == 0 and "version 1 is active again" in back.stdout
    assert SpamModel.objects.get(active=True).version == 1
    missing = runner.invoke(main, ["spam", "promote", "9"])
    assert missing.exit_code == 2 and "no spam model version 9" in missing.stderr
