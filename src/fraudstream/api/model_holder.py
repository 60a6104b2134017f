"""The champion the API serves: the scorer's holder (``scoring.reload``), polled by a thread.

The holder is loaded in the lifespan and a background thread asks it every ``interval_s``
whether the alias moved; a new version is loaded beside the old one and swapped in
atomically, so requests never see a half-loaded model. A model of another feature-set
version is refused (the registry raises ``IncompatibleModelError``) and the previous one
keeps serving; readiness reports the holder's ``detail``.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from fraudstream.api.scoring import Scorer
from fraudstream.scoring.reload import registry_holder
from fraudstream.settings import Settings


@dataclass(frozen=True)
class ModelStatus:
    loaded: bool
    version: str | None
    feature_set_version: str | None
    detail: str


class ModelHolder:
    def __init__(self, settings: Settings, alias: str) -> None:
        self.alias = alias
        # Polled on demand (interval 0), one attempt per poll: the thread sets the pace.
        self._models = registry_holder(settings, alias, interval_s=0.0)
        self.scorer: Scorer | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

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
        def poll() -> None:
            while not self._stop.wait(interval_s):
                self.load()

        self._thread = threading.Thread(target=poll, name="model-reload", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def status(self) -> ModelStatus:
        scorer = self.scorer
        if scorer is None:
            return ModelStatus(False, None, None, self.detail)
        return ModelStatus(True, scorer.version, scorer.feature_set_version, self.detail)
