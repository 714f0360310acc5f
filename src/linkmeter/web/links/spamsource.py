"""What the spam indicator scores with in a web process: the active ``SpamModel`` with the labels' adaptation
layers, cached, and refreshed by a thread of its own (never on the event loop), so that workers pick up a newly
active model or new labels within LINKMETER_SPAM_REFRESH_SECONDS, without a restart."""

from __future__ import annotations

import logging
import threading

from django.conf import settings
from django.db import DatabaseError, connection
from django.db.models import Count, Max

from linkmeter.indicators.spam import learning
from linkmeter.indicators.spam import model as spam_model
from linkmeter.web.links.models import Feedback
from linkmeter.web.links.services import spam_learning
from linkmeter.web.links.services.errors import ServiceError

log = logging.getLogger(__name__)


class ActiveModelSource:
    """``model.use(source)``: calling it answers the cached artifact (cheap, never blocks)."""

    def __init__(self, *, daily: bool = False) -> None:
        self._daily = daily  # embedded: this process starts the daily retrain (the Celery mode's beat does)
        self._artifact: spam_model.Artifact | None = None
        self._key: tuple[object, ...] | None = None
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def __call__(self) -> spam_model.Artifact:
        found = self._artifact
        return found if found is not None else spam_model.load_shipped()

    def refresh(self) -> bool:
        """Reload when the active model or the labels changed. Returns whether it reloaded."""
        with self._lock:
            active = spam_learning.spam_model_active()
            counts = Feedback.objects.aggregate(n=Count("id"), last=Max("updated_at"))
            key = (active.pk, counts["n"], counts["last"])
            if key == self._key:
                return False
            self._artifact = learning.adapt(spam_learning.artifact_of(active), spam_learning.labels_all())
            self._key = key
            return True

    def poke(self) -> None:
        """Something changed in this process: refresh soon (on the thread)."""
        self._wake.set()

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="spam-model-source", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()

    def _loop(self) -> None:
        every = settings.LINKMETER["SPAM_REFRESH_SECONDS"]
        try:
            while not self._stop.is_set():
                try:
                    self.refresh()
                    if self._daily:
                        spam_learning.retrain_if_due()
                except (DatabaseError, spam_model.ArtifactError, ServiceError) as exc:
                    log.warning("spam model refresh failed: %s", exc)
                self._wake.wait(every)
                self._wake.clear()
        finally:
            connection.close()


_installed: ActiveModelSource | None = None


def install(*, daily: bool = False) -> ActiveModelSource:
    """Score with the database's active model in this process from now on (serve and worker start-up);
    ``daily``: this process also starts the daily retrain (embedded serve)."""
    global _installed
    if _installed is None:
        _installed = ActiveModelSource(daily=daily)
        spam_learning.on_scoring_changed(_installed.poke)
    spam_model.use(_installed)
    _installed.start()
    return _installed


def uninstall() -> None:
    global _installed
    if _installed is not None:
        _installed.stop()
    _installed = None
    spam_model.use(None)
