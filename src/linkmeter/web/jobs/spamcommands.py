"""`linkmeter spam label | train | evaluate | models | promote | rollback`: the spam model from the command line."""

from __future__ import annotations

import csv
import getpass
import json
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import IO, Any

import click

EXIT_OK, EXIT_BAD_ROWS, EXIT_USAGE = 0, 1, 2


@dataclass(slots=True)
class Rows:
    """A labelled CSV: (line, url, is_spam, labeller) rows and the bad lines (line, message)."""

    good: list[tuple[int, str, bool, str | None]] = field(default_factory=list)
    bad: list[tuple[int, str]] = field(default_factory=list)


def read_rows(file: IO[str], *, url_column: str, label_column: str, positive: Sequence[str] | None,
              labeller_column: str | None = None) -> Rows:
    """Rows of a labelled CSV. Without ``positive``, labels are read as people write them (spam/ham,
    phishing/legitimate, 1/0...); with it, a label in ``positive`` is spam and any other is not."""
    _django()  # the label parser lives with the models: a fresh `linkmeter spam ...` process has no Django yet
    from linkmeter.web.links.services.errors import ServiceError
    from linkmeter.web.links.services.feedback import parse_label

    reader = csv.DictReader(file)
    columns = reader.fieldnames or []
    for needed in (url_column, label_column, *([labeller_column] if labeller_column else [])):
        if needed not in columns:
            raise click.UsageError(f"the file has no column {needed!r} (its columns: {', '.join(columns) or 'none'})")
    wanted = {value.strip().lower() for value in positive} if positive else None
    rows = Rows()
    for line, row in enumerate(reader, start=2):
        url = (row.get(url_column) or "").strip()
        raw = (row.get(label_column) or "").strip()
        if not url:
            rows.bad.append((line, "no URL"))
            continue
        if wanted is not None:
            if not raw:
                rows.bad.append((line, "no label"))
                continue
            is_spam = raw.lower() in wanted
        else:
            try:
                is_spam = parse_label(raw) == "spam"
            except ServiceError as exc:
                rows.bad.append((line, f"{exc.message} (got {raw!r})"))
                continue
        rows.good.append((line, url, is_spam, (row.get(labeller_column) or None) if labeller_column else None))
    return rows


def _django() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "linkmeter.web.config.settings")
    import django

    django.setup()


def _setup() -> None:
    from django.core.management import call_command

    _django()
    call_command("migrate", verbosity=0, interactive=False)
    from linkmeter.web import runtime

    if runtime.installed() is None:
        runtime.install(runtime.Runtime())


def _say(message: str, done: int = 0, total: int = 0) -> None:
    suffix = f" [{done}/{total}]" if total else ""
    click.echo(f"{datetime.now(UTC):%H:%M:%S} {message}{suffix}", err=True)


def _report_bad(bad: Sequence[tuple[int, str]]) -> None:
    for line, message in bad[:50]:
        click.echo(f"line {line}: {message}", err=True)
    if len(bad) > 50:
        click.echo(f"... and {len(bad) - 50} more bad lines", err=True)


def _fail(message: str, code: int = EXIT_USAGE) -> None:
    click.echo(f"linkmeter spam: {message}", err=True)
    sys.exit(code)


def _open(path: str) -> IO[str]:
    try:
        return open(path, encoding="utf-8-sig", newline="")
    except OSError as exc:
        raise click.UsageError(f"cannot read {path}: {exc.strerror}") from exc


URL_COLUMN = click.option("--url-column", default="url", show_default=True, help="The column holding the URL.")
LABEL_COLUMN = click.option("--label-column", default="label", show_default=True, help="The column holding the label.")
POSITIVE = click.option("--positive", metavar="A,B", default=None,
                        help="Label values meaning spam (any other is not spam) [default: spam, phishing, 1, true "
                             "are spam; ham, not_spam, legitimate, 0, false are not; others are bad rows].")


@click.group()
def spam() -> None:
    """The spam model: labels, training, evaluation, versions (docs/spam.md)."""


@spam.command()
@click.argument("file", metavar="FILE.csv")
@URL_COLUMN
@LABEL_COLUMN
@POSITIVE
@click.option("--labeller", default=None, help="Whose labels these are [default: cli:<your login name>].")
def label(file: str, url_column: str, label_column: str, positive: str | None, labeller: str | None) -> None:
    """Store the file's rows as labels (source cli). Bad rows are reported by line and the rest stored; exit
    status 1 when a row was bad."""
    with _open(file) as handle:
        rows = read_rows(handle, url_column=url_column, label_column=label_column,
                         positive=positive.split(",") if positive else None)
    _setup()
    from linkmeter.web.links.models import FeedbackSource
    from linkmeter.web.links.services.feedback import feedback_bulk_create

    items = [{"url": url, "label": "spam" if is_spam else "ham"} for _, url, is_spam, _ in rows.good]
    outcome = feedback_bulk_create(items=items, source=FeedbackSource.CLI,
                                   labeller=f"cli:{labeller or getpass.getuser()}")
    bad = sorted([*rows.bad, *((rows.good[e["index"]][0], e["message"]) for e in outcome.errors)])
    _report_bad(bad)
    click.echo(f"{outcome.created} labels stored, {outcome.replaced} replaced earlier ones, {len(bad)} bad rows")
    sys.exit(EXIT_BAD_ROWS if bad else EXIT_OK)


@spam.command()
@click.option("--labels", "labels_file", metavar="FILE.csv", default=None,
              help="Also learn from this file's rows (url, label), as if they were labels given in the product "
                   "(one labeller per file unless --labeller-column).")
@URL_COLUMN
@LABEL_COLUMN
@POSITIVE
@click.option("--labeller-column", default=None, help="The column naming who gave each label.")
@click.option("--promote", is_flag=True, help="Make the candidate active when it passes the candidate check.")
def train(labels_file: str | None, url_column: str, label_column: str, positive: str | None,
          labeller_column: str | None, promote: bool) -> None:
    """Train a candidate from the shipped set (LINKMETER_SPAM_DATA) plus every label. Exit status 1 when
    --promote was refused by the check (the figure that stopped it is printed), 2 on bad input."""
    import resource
    import time

    extra = []
    bad: list[tuple[int, str]] = []
    if labels_file:
        with _open(labels_file) as handle:
            rows = read_rows(handle, url_column=url_column, label_column=label_column,
                             positive=positive.split(",") if positive else None, labeller_column=labeller_column)
        bad = rows.bad
        _report_bad(bad)
        from linkmeter.indicators.spam.learning import Label

        now = datetime.now(UTC)
        extra = [Label(url=url, is_spam=is_spam, labeller=f"file:{who or labels_file}", time=now, source="cli")
                 for _, url, is_spam, who in rows.good]
    _setup()
    from linkmeter.web.links.models import SpamJobKind
    from linkmeter.web.links.services import spam_learning
    from linkmeter.web.links.services.errors import ServiceError

    started, cpu = time.perf_counter(), time.process_time()
    try:
        job = spam_learning.job_start(kind=SpamJobKind.TRAIN, trigger="cli", background=False)
        done = spam_learning.job_run(job.pk, _say, extra=extra)
        candidate = done.model
        assert candidate is not None
        click.echo(f"version {candidate.version}: {candidate.check_message}")
        click.echo(json.dumps(candidate.figures.get("check", {}), indent=1))
        # CPU and peak RSS, not tracemalloc: tracing every allocation would slow the training it measures.
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        click.echo(f"trained in {time.perf_counter() - started:.1f} s ({time.process_time() - cpu:.1f} s CPU), "
                   f"peak memory {peak:.0f} MiB (RSS)", err=True)
        if promote:
            spam_learning.spam_model_promote(version=candidate.version, progress=_say, background=False)
            click.echo(f"version {candidate.version} is active")
    except ServiceError as exc:
        _fail(exc.message, EXIT_BAD_ROWS if exc.code == "check_failed" else EXIT_USAGE)
    sys.exit(EXIT_BAD_ROWS if bad else EXIT_OK)


@spam.command()
@click.option("--labels", "labels_file", metavar="FILE.csv", required=True, help="The labelled URLs to score.")
@URL_COLUMN
@LABEL_COLUMN
@POSITIVE
@click.option("--json", "as_json", is_flag=True, help="Print the figures as one JSON object.")
@click.option("--analyze", is_flag=True, help="Analyse the URLs never analysed (calls the providers) first.")
def evaluate(labels_file: str, url_column: str, label_column: str, positive: str | None, as_json: bool,
             analyze: bool) -> None:
    """Score the file's URLs with the active model (stored signals when the link was analysed, the URL alone
    otherwise) and print n, positives, ROC-AUC, PR-AUC, recall at 1 % FPR, precision and recall at the flag
    threshold, Brier score."""
    with _open(labels_file) as handle:
        rows = read_rows(handle, url_column=url_column, label_column=label_column,
                         positive=positive.split(",") if positive else None)
    _report_bad(rows.bad)
    _setup()
    from linkmeter.engine.urls import InvalidURL, parse_url
    from linkmeter.indicators.spam import learning
    from linkmeter.indicators.spam.settings import threshold
    from linkmeter.web.links.models import FINAL_STATUSES, Link
    from linkmeter.web.links.services import spam_learning

    normalised: list[tuple[str, bool]] = []
    bad = list(rows.bad)
    for line, url, is_spam, _ in rows.good:
        try:
            normalised.append((parse_url(url).url, is_spam))
        except InvalidURL as exc:
            bad.append((line, exc.message))
    if not normalised:
        _fail("no usable row in the file")
    urls = [url for url, _ in normalised]
    stored = _stored_signals(urls, Link, FINAL_STATUSES)
    if analyze:
        stored.update(_analyse([url for url in urls if url not in stored]))
    active = spam_learning.spam_model_active()
    artifact = learning.adapt(spam_learning.artifact_of(active), spam_learning.labels_all())
    cut = threshold(os.environ)
    predicted = learning.scores(artifact, [(url, stored.get(url)) for url in urls])
    figures = learning.evaluate([spam for _, spam in normalised], predicted, cut)
    figures_out: dict[str, Any] = {**figures, "model": active.version, "threshold": cut,
                                   "with_signals": sum(1 for url in urls if url in stored), "bad_rows": len(bad)}
    if as_json:
        click.echo(json.dumps(figures_out))
    else:
        for key, value in figures_out.items():
            click.echo(f"{key:24} {value if value is not None else '-'}")
    sys.exit(EXIT_BAD_ROWS if bad else EXIT_OK)


def _stored_signals(urls: Sequence[str], link_model: Any, final: Any) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    for start in range(0, len(urls), 500):
        for link in link_model.objects.filter(url__in=urls[start:start + 500]).select_related("latest_analysis"):
            analysis = link.latest_analysis
            if analysis is not None and analysis.status in final:
                found[link.url] = analysis.signals
    return found


def _analyse(urls: Sequence[str]) -> dict[str, dict[str, Any]]:
    if not urls:
        return {}
    from linkmeter import loops
    from linkmeter.assembly import build_engine

    engine = build_engine(os.environ)

    async def run() -> dict[str, dict[str, Any]]:
        found: dict[str, dict[str, Any]] = {}
        try:
            async for result in engine.analyze_many(list(urls), concurrency=20):
                found[result.url] = dict(result.signals)
                if len(found) % 100 == 0:
                    _say("analysing", len(found), len(urls))
        finally:
            await engine.close()
        return found

    return loops.run(run())


@spam.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def models(as_json: bool) -> None:
    """List the spam model versions: active, parent, labels seen, figures, candidate check."""
    _setup()
    from linkmeter.web.links.selectors import spam as selectors
    from linkmeter.web.links.services import spam_learning

    spam_learning.spam_model_active()
    listed = selectors.models_list()
    if as_json:
        click.echo(json.dumps(listed))
        return
    for row in listed:
        test = (row["figures"].get("check") or {}).get("shipped_test.candidate") or \
            (row["figures"].get("domain_split") or {}).get("model") or {}
        mark = "*" if row["active"] else " "
        click.echo(f"{mark} {row['version']:>4}  parent {row['parent'] or '-':>4}  {row['created_at'][:19]}  "
                   f"labels {row['labels_seen']:>6}  roc_auc {test.get('roc_auc', '-')}  pr_auc "
                   f"{test.get('pr_auc', '-')}  {row['check_message'] or 'shipped'}")


@spam.command()
@click.argument("version", type=int)
@click.option("--force", is_flag=True, help="Promote even when the candidate check failed.")
def promote(version: int, force: bool) -> None:
    """Make VERSION the active model (it must have passed the candidate check), then re-score stored links."""
    _setup()
    from linkmeter.web.links.services import spam_learning
    from linkmeter.web.links.services.errors import ServiceError

    try:
        spam_learning.spam_model_promote(version=version, force=force, progress=_say, background=False)
    except ServiceError as exc:
        _fail(exc.message, EXIT_BAD_ROWS if exc.code == "check_failed" else EXIT_USAGE)
    click.echo(f"version {version} is active")


@spam.command()
def rollback() -> None:
    """Make the previously active model active again, then re-score stored links."""
    _setup()
    from linkmeter.web.links.services import spam_learning
    from linkmeter.web.links.services.errors import ServiceError

    try:
        row = spam_learning.spam_model_rollback(progress=_say, background=False)
    except ServiceError as exc:
        _fail(exc.message)
    click.echo(f"version {row.version} is active again")

