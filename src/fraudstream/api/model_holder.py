"""The champion the API serves, loaded in the lifespan and reloaded when the alias moves.

A background thread polls the registry alias every ``interval_s``; a new version is
loaded beside the old one and swapped in atomically, so requests never see a
half-loaded model. A model of another feature-set version is refused (the registry
adapter raises) and the previous one keeps serving; readiness reports it.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

from fraudstream.api.scoring import Scorer
from fraudstream.settings import Settings

log = logging.getLogger("fraudstream.api")


@dataclass(frozen=True)
class ModelStatus:
    loaded: bool
    version: str | None
    feature_set_version: str | None
    detail: str


class ModelHolder:
    def __init__(self, settings: Settings, alias: str) -> None:
        self.settings, self.alias = settings, alias
        self.scorer: Scorer | None = None
        self.detail = "not loaded yet"
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def load(self) -> None:
        """Load the alias's version unless it is the one already served; never raises."""
        from fraudstream.adapters import registry

        try:
            version = registry.version_for_alias(self.settings, self.alias)
            if version is None:
                self.detail = (
                    f"{self.settings.mlflow.model_name} has no @{self.alias} yet: "
                    "train and promote one (`fraudstream train`, `fraudstream promote`)"
                )
                return
            if self.scorer is not None and self.scorer.version == version:
                return
            loaded = registry.load_model(self.settings, version)
            self.scorer = Scorer(
                loaded.model, loaded.version, loaded.threshold, loaded.feature_set_version
            )
            self.detail = f"serving version {version} (@{self.alias})"
            log.info("model: %s", self.detail)
        except Exception as exc:  # registry down, incompatible model: keep serving the old one
            self.detail = f"cannot load @{self.alias}: {exc}"
            log.warning("model: %s", self.detail)

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
