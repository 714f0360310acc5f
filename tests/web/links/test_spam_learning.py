"""The spam model in the database: seeded, trained, promoted only after the check, rolled back; stored links
re-scored naming the model; one labeller's 1,000 labels cannot flag benign links elsewhere."""

from __future__ import annotations

import csv
import itertools
import random
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.contrib.auth.models import User

from linkmeter.indicators.spam import model as spam_model
from linkmeter.indicators.spam.settings import DEFAULT_THRESHOLD
from linkmeter.web.links import spamsource
from linkmeter.web.links.models import Analysis, AnalysisStatus, Feedback, Link, SpamJob, SpamJobKind, SpamModel
from linkmeter.web.links.services import spam_learning
from linkmeter.web.links.services.errors import ServiceError
from linkmeter.web.links.services.feedback import feedback_bulk_create, feedback_create

pytestmark = pytest.mark.django_db(transaction=True)

WORDS = ["garden", "river", "bakery", "atlas", "harbor", "maple", "cinema", "orbit", "violet", "summit"]


def benign(rng: random.Random, i: int) -> str:
    return f"https://www.{rng.choice(WORDS)}{rng.choice(WORDS)}{i}.com/{rng.choice(WORDS)}"


def phishing(rng: random.Random, i: int) -> str:
    return f"http://secure-login-{rng.choice(WORDS)}{i}.xyz/verify/account/update.php?id={rng.randrange(10**6)}"


@pytest.fixture
def labelled_set(tmp_path: Path, settings: object) -> Iterator[Path]:
    """A small labelled set in the shipped set's columns, as LINKMETER_SPAM_DATA."""
    rng = random.Random(7)
    path = tmp_path / "labelled.csv"
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["url", "status"])
        for i in range(150):
            writer.writerow([benign(rng, i), "legitimate"])
            writer.writerow([phishing(rng, i), "phishing"])
    limits = dict(settings.LINKMETER)  # type: ignore[attr-defined]
    limits["SPAM_DATA"] = str(path)
    settings.LINKMETER = limits  # type: ignore[attr-defined]
    yield path


def analysed(url: str, signals: dict[str, object]) -> Link:
    link = Link.objects.create(url=url, domain=url.split("/")[2])
    analysis = Analysis.objects.create(link=link, status=AnalysisStatus.DONE, signals={"url": url, **signals})
    link.latest_analysis = analysis
    link.save(update_fields=["latest_analysis"])
    return link


def test_the_shipped_model_is_version_1_and_active_on_first_use() -> None:
    active = spam_learning.spam_model_active()
    assert (active.version, active.active) == (1, True)
    assert spam_learning.artifact_of(active).weights == spam_model.load_shipped().weights
    assert spam_learning.spam_model_active().pk == active.pk
    assert SpamModel.objects.count() == 1


def test_training_without_the_labelled_set_says_which_setting_is_missing() -> None:
    with pytest.raises(ServiceError) as info:
        spam_learning.spam_model_train()
    assert info.value.code == "no_training_data"
    assert "LINKMETER_SPAM_DATA" in info.value.message


def test_train_promote_rescore_and_rollback(labelled_set: Path) -> None:
    link = analysed("https://shop.example.org/basket", {"page.status": 200})
    first = spam_learning.spam_model_active()
    candidate = spam_learning.spam_model_train()
    assert candidate.version == 2 and candidate.parent_id == first.pk and not candidate.active
    assert candidate.check_passed is not None and candidate.check_message
    assert SpamModel.objects.get(active=True).version == 1
    spam_learning.spam_model_promote(version=2, force=not candidate.check_passed, background=False)
    assert SpamModel.objects.get(active=True).version == 2
    link.latest_analysis.refresh_from_db()  # type: ignore[union-attr]
    signals = link.latest_analysis.signals  # type: ignore[union-attr]
    assert signals["spam.model"] == "2" and 0 <= signals["spam.score"] <= 1
    assert signals["page.status"] == 200  # the stored signals are kept; only the verdict is new
    job = SpamJob.objects.filter(kind=SpamJobKind.RESCORE).latest("id")
    assert (job.status, job.done, job.total) == ("done", 1, 1)

    back = spam_learning.spam_model_rollback(background=False)
    assert back.version == 1 and SpamModel.objects.get(active=True).version == 1
    link.latest_analysis.refresh_from_db()  # type: ignore[union-attr]
    assert link.latest_analysis.signals["spam.model"] == "1"  # type: ignore[union-attr]


def test_a_candidate_that_failed_the_check_is_not_promoted_and_the_figure_is_named(labelled_set: Path) -> None:
    spam_learning.spam_model_active()
    candidate = spam_learning.spam_model_train()
    SpamModel.objects.filter(pk=candidate.pk).update(check_passed=False,
                                                     check_message="recent pr_auc 0.5 is below 0.9 (stopped by "
                                                                   "recent.pr_auc)")
    with pytest.raises(ServiceError) as info:
        spam_learning.spam_model_promote(version=candidate.version, background=False)
    assert info.value.code == "check_failed" and "recent.pr_auc" in info.value.message
    assert SpamModel.objects.get(active=True).version == 1


def test_only_one_training_runs_at_a_time() -> None:
    spam_learning.job_start(kind=SpamJobKind.TRAIN, trigger="demand", background=False)
    with pytest.raises(ServiceError) as info:
        spam_learning.job_start(kind=SpamJobKind.TRAIN, trigger="demand", background=False)
    assert info.value.code == "job_running"


def test_rollback_with_no_earlier_model_is_refused() -> None:
    with pytest.raises(ServiceError) as info:
        spam_learning.spam_model_rollback(background=False)
    assert info.value.code == "no_previous_model"


def test_labels_move_the_next_scores_through_the_source() -> None:
    url = "https://www.quiet-bakery-garden.com/"
    link = analysed(url, {"page.status": 200})
    source = spamsource.ActiveModelSource()
    source.refresh()
    before = _score(source, url)
    people = [User.objects.create_user(f"person{i}") for i in range(3)]
    for person in people:
        feedback_create(link=link, label="spam", user=person)
    assert source.refresh()
    after = _score(source, url)
    assert after > before and after >= DEFAULT_THRESHOLD


def test_one_account_labelling_1000_benign_links_spam_does_not_flag_other_benign_links() -> None:
    names = ["garden", "river", "bakery", "atlas", "harbor", "maple", "cinema", "orbit", "violet", "summit",
             "lantern", "meadow"]
    sites = [f"https://www.{x}{y}{z}.com/{x}/" for x, y, z in itertools.permutations(names, 3)]
    random.Random(3).shuffle(sites)
    attacker = User.objects.create_user("attacker")
    outcome = feedback_bulk_create(items=[{"url": url, "label": "spam"} for url in sites[:1000]], user=attacker)
    assert outcome.created == 1000 and Feedback.objects.count() == 1000
    source = spamsource.ActiveModelSource()
    # Other benign sites (not the attacker's family of names): what everyone else submits.
    others = ["copper", "willow", "falcon", "prairie", "quartz", "juniper", "beacon", "canyon"]
    unseen = [f"https://{x}{y}.org/{z}" for x, y, z in itertools.permutations(others, 3)][:300]
    spam_model.use(None)
    clean = spam_model.load_shipped()
    source.refresh()
    before = sum(_score_with(clean, url) >= DEFAULT_THRESHOLD for url in unseen) / len(unseen)
    after = sum(_score(source, url) >= DEFAULT_THRESHOLD for url in unseen) / len(unseen)
    assert after - before <= 0.005


def _score(source: spamsource.ActiveModelSource, url: str) -> float:
    return _score_with(source(), url)


def _score_with(artifact: spam_model.Artifact, url: str) -> float:
    from linkmeter.indicators.spam.scoring import score

    return score(url, {"url": url}, artifact=artifact).score


def test_a_process_picks_up_a_newly_active_model_without_a_restart() -> None:
    source = spamsource.ActiveModelSource()
    source.refresh()
    assert source().version == "1"
    first = spam_learning.spam_model_active()
    SpamModel.objects.create(version=2, parent=first, algorithm=first.algorithm, check_passed=True,
                             artifact=first.artifact.replace('"version": "1"', '"version": "2"', 1))
    spam_learning.spam_model_promote(version=2, background=False)
    assert source.refresh() and source().version == "2"


def test_enough_new_labels_start_one_retrain(labelled_set: Path, settings: object,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    limits = dict(settings.LINKMETER)  # type: ignore[attr-defined]
    limits["SPAM_RETRAIN_LABELS"] = 3
    settings.LINKMETER = limits  # type: ignore[attr-defined]
    started: list[int] = []
    from linkmeter.web import runtime

    runtime.install(runtime.Runtime(spam_jobs=started.append))
    spam_learning.spam_model_active()
    feedback_bulk_create(items=[{"url": f"https://www.example{i}.org/", "label": "ham"} for i in range(2)])
    assert started == []
    feedback_bulk_create(items=[{"url": "https://www.example9.org/", "label": "ham"}])
    feedback_bulk_create(items=[{"url": "https://www.example8.org/", "label": "ham"}])
    assert len(started) == 1  # the second batch found the first training running: one at a time
    assert SpamJob.objects.get(pk=started[0]).trigger == "labels"
