"""Hot reload: serve the model an alias points at, switching only between micro-batches.

``ModelHolder.refresh`` is called by the stream before each micro-batch. At most every
``interval_s`` it asks the registry which version the alias points at; when that
moved, it loads the new version and swaps it in for the next batch. A version whose
feature set this scorer does not compute is refused: the current model stays and
the refusal is counted and logged once per version. A load that fails (registry
down) keeps the current model and is retried at the next poll.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from fraudstream.scoring.model import IncompatibleModelError, ScoringModel

log = logging.getLogger(__name__)

VersionLookup = Callable[[str], "str | None"]
"""alias -> the version it points at (None: alias not set)."""
ModelLoader = Callable[[str, str], ScoringModel]
"""(version, role) -> a checked ScoringModel; raises IncompatibleModelError or any load error."""


@dataclass
class ReloadCounts:
    loaded: int = 0
    refused: int = 0
    failed: int = 0


@dataclass
class ModelHolder:
    """The model currently served under ``alias`` (None until one could be loaded)."""

    alias: str
    lookup: VersionLookup
    loader: ModelLoader
    interval_s: float
    clock: Callable[[], float] = time.monotonic
    current: ScoringModel | None = None
    counts: ReloadCounts = field(default_factory=ReloadCounts)
    refused_versions: set[str] = field(default_factory=set)
    _next_poll: float = 0.0

    def refresh(self, force: bool = False) -> bool:
        """Poll the alias when due; returns True when a new model was swapped in."""
        now = self.clock()
        if not force and now < self._next_poll:
            return False
        self._next_poll = now + self.interval_s
        try:
            version = self.lookup(self.alias)
        except Exception as exc:  # the registry being down must not stop scoring
            self.counts.failed += 1
            log.warning("could not read @%s from the registry: %s", self.alias, exc)
            return False
        if version is None or version in self.refused_versions:
            return False
        if self.current is not None and self.current.version == version:
            return False
        try:
            model = self.loader(version, self.alias)
        except IncompatibleModelError as exc:
            self.counts.refused += 1
            self.refused_versions.add(version)
            log.error(
                "refused @%s version %s, keeping the current model: %s", self.alias, version, exc
            )
            return False
        except Exception as exc:
            self.counts.failed += 1
            log.warning("could not load @%s version %s: %s", self.alias, version, exc)
            return False
        previous = self.current.version if self.current else None
        self.current = model
        self.counts.loaded += 1
        log.info("@%s: now serving version %s (was %s)", self.alias, version, previous)
        return True
