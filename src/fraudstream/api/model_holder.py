"""The champion the API serves: the scorer's holder (``scoring.reload``), polled by a thread.

The holder is loaded in the lifespan and a background thread asks it every ``interval_s``
whether the alias moved; a new version is loaded beside the old one and swapped in
atomically, so requests never see a half-loaded model. A model of another feature-set
version is refused (the registry raises ``IncompatibleModelError``) and the previous one
keeps serving; readiness reports the holder's ``detail``.

``RulesHolder`` does the same for the active rule set (``services.rules``): each worker polls
PostgreSQL on its own thread and swaps a newly activated set in for the next request.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

from fraudstream.api.scoring import LiveRules, Scorer
from fraudstream.scoring.reload import registry_holder, rule_set_holder
from fraudstream.settings import Settings


@dataclass(frozen=True)
class ModelStatus:
    loaded: bool
    version: str | None
    feature_set_version: str | None
    detail: str


class _Poller:
    """Calls ``load`` every ``interval_s`` on a daemon thread until stopped."""

    def __init__(self, load: Callable[[], None], name: str) -> None:
        self._load, self._name = load, name
        self._stop = threading.Event()

    def start(self, interval_s: float) -> None:
        def poll() -> None:
            while not self._stop.wait(interval_s):
                self._load()

        threading.Thread(target=poll, name=self._name, daemon=True).start()

    def stop(self) -> None:
        self._stop.set()


class ModelHolder:
    def __init__(self, settings: Settings, alias: str) -> None:
        self.alias = alias
        # Polled on demand (interval 0), one attempt per poll: the thread sets the pace.
        self._models = registry_holder(settings, alias, interval_s=0.0)
        self.scorer: Scorer | None = None
        self._poller = _Poller(self.load, "model-reload")

    @property
    def detail(self) -> str:
        return self._models.detail

    def load(self) -> None:
        """Load the alias's version unless it is the one already served; never raises.

        A model whose booster has other columns than the catalogue is refused by the
        holder (``ScoringModel``'s check) and the previous one keeps serving."""
        if not self._models.refresh(force=True):
            return
        model = self._models.current
        assert model is not None  # refresh swapped one in
        self.scorer = Scorer(model)

    def start(self, interval_s: float) -> None:
        self._poller.start(interval_s)

    def stop(self) -> None:
        self._poller.stop()

    def status(self) -> ModelStatus:
        scorer = self.scorer
        if scorer is None:
            return ModelStatus(False, None, None, self.detail)
        return ModelStatus(True, scorer.version, scorer.feature_set_version, self.detail)


class RulesHolder:
    """The active rule set this worker decides with (``current`` None: none is active, the
    model decides alone), reloaded when another set is activated."""

    def __init__(self, settings: Settings) -> None:
        self._rules = rule_set_holder(settings.postgres, interval_s=0.0)
        self.current: LiveRules | None = None
        self._poller = _Poller(self.load, "rules-reload")
        self._lock = threading.Lock()  # the poll thread and PUT /rules both load

    @property
    def detail(self) -> str:
        return self._rules.detail

    def load(self) -> None:
        """Load the active set unless it is the one already served; never raises."""
        with self._lock:
            if self._rules.refresh(force=True) and self._rules.current is not None:
                self.current = LiveRules.of(self._rules.current)

    def start(self, interval_s: float) -> None:
        self._poller.start(interval_s)

    def stop(self) -> None:
        self._poller.stop()
