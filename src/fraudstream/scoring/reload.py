"""Hot reload: serve the model an alias points at, switching only between uses.

One holder for every process that serves the champion: the stream calls
``ModelHolder.refresh`` before each micro-batch, the API from a background thread. At most
every ``interval_s`` it asks the registry which version the alias points at; when that
moved, it loads the new version and swaps it in for the next use. A version whose
feature set this code does not compute is refused: the current model stays and the
refusal is counted and logged once per version. A load that fails (registry down) keeps
the current model and is retried at the next poll. ``detail`` says, in one line, what is
served or why nothing is.

``Holder`` is generic over what it serves (anything with a ``version``): the scorer and the
API's workers hold the active rule set the same way (``rule_set_holder``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Generic, Protocol, TypeVar

from fraudstream.adapters import rule_sets
from fraudstream.adapters.registry import (
    IncompatibleModelError,
    load_model,
    version_for_alias,
)
from fraudstream.adapters.retry import RetryPolicy, retry
from fraudstream.rules.ruleset import RuleSet, RuleSetError, parse_rule_set
from fraudstream.scoring.model import ScoringModel
from fraudstream.settings import PostgresSettings, Settings

log = logging.getLogger(__name__)

VersionLookup = Callable[[str], "str | None"]
"""alias -> the version it points at (None: alias not set)."""
ModelLoader = Callable[[str, str], ScoringModel]
"""(version, role) -> a checked ScoringModel; raises IncompatibleModelError or any load error."""


class Versioned(Protocol):
    @property
    def version(self) -> str: ...


Served = TypeVar("Served", bound=Versioned)


@dataclass
class ReloadCounts:
    loaded: int = 0
    refused: int = 0
    failed: int = 0


@dataclass
class Holder(Generic[Served]):
    """What is currently served under ``alias`` (None until one could be loaded)."""

    alias: str
    lookup: VersionLookup
    loader: Callable[[str, str], Served]
    interval_s: float
    clock: Callable[[], float] = time.monotonic
    #: What ``detail`` calls the model while the alias is not set.
    name: str = "the model"
    current: Served | None = None
    detail: str = "not loaded yet"
    counts: ReloadCounts = field(default_factory=ReloadCounts)
    refused_versions: set[str] = field(default_factory=set)
    #: Where the alias is read, and what to do while it is not set (for ``detail``).
    source: str = "the registry"
    missing_hint: str = "train and promote one (`fraudstream train`, `fraudstream promote`)"
    #: The loader's errors that refuse a version for good (others are retried next poll).
    refusals: tuple[type[Exception], ...] = (IncompatibleModelError,)
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
            self.detail = f"cannot read @{self.alias} from {self.source}: {exc}"
            log.warning("could not read @%s from %s: %s", self.alias, self.source, exc)
            return False
        if version is None:
            if self.current is None:
                self.detail = f"{self.name} has no @{self.alias} yet: {self.missing_hint}"
            return False
        if version in self.refused_versions:
            return False
        if self.current is not None and self.current.version == version:
            return False
        try:
            model = self.loader(version, self.alias)
        except self.refusals as exc:
            self.counts.refused += 1
            self.refused_versions.add(version)
            self.detail = f"refused @{self.alias} version {version}: {exc}"
            log.error(
                "refused @%s version %s, keeping the current one: %s", self.alias, version, exc
            )
            return False
        except Exception as exc:
            self.counts.failed += 1
            self.detail = f"cannot load @{self.alias} version {version}: {exc}"
            log.warning("could not load @%s version %s: %s", self.alias, version, exc)
            return False
        previous = self.current.version if self.current else None
        self.current = model
        self.counts.loaded += 1
        self.detail = f"serving version {version} (@{self.alias})"
        log.info("@%s: now serving version %s (was %s)", self.alias, version, previous)
        return True


ModelHolder = Holder[ScoringModel]
"""The holder of a registered model (the champion, the shadow challenger)."""


def registry_holder(
    settings: Settings, alias: str, interval_s: float, budget_s: float = 0.0
) -> ModelHolder:
    """A holder polling ``alias`` in the registry; incompatible versions are refused.

    A registry that does not answer is retried for up to ``budget_s`` but never longer
    than the poll interval (the caller's loop waits meanwhile, not its work); then the poll
    counts as failed, the current model stays and the next poll tries again.
    """
    policy = RetryPolicy(budget_s=min(budget_s, interval_s))
    where = f"the registry at {settings.mlflow.uri}"

    def load(version: str, role: str) -> ScoringModel:
        loaded = retry(lambda: load_model(settings, version), policy, where)
        return ScoringModel.checked(loaded, role)

    return ModelHolder(
        alias=alias,
        lookup=lambda a: retry(lambda: version_for_alias(settings, a), policy, where),
        loader=load,
        interval_s=interval_s,
        name=settings.mlflow.model_name,
    )


RULE_SET_ALIAS = "active"
"""What the rule set holder polls: the latest activation (``adapters.rule_sets``)."""
RuleSetHolder = Holder[RuleSet]
"""The holder of the active rule set (the scorer, each API worker)."""


def stored_rule_set(settings: PostgresSettings, version: str) -> RuleSet:
    """The stored set ``version``, checked. Raises ``RuleSetError`` (unknown or invalid)."""
    document = rule_sets.stored(settings, version)
    if document is None:
        raise RuleSetError(f"no rule set version {version!r} is stored")
    return parse_rule_set(document, f"stored rule set {version!r}")


def rule_set_holder(settings: PostgresSettings, interval_s: float) -> RuleSetHolder:
    """A holder of the active rule set, polling PostgreSQL at most every ``interval_s``; a
    set this code cannot load (a feature it reads left the catalogue) is refused and the
    current one kept."""
    return RuleSetHolder(
        alias=RULE_SET_ALIAS,
        lookup=lambda _alias: rule_sets.active_version(settings),
        loader=lambda version, _role: stored_rule_set(settings, version),
        interval_s=interval_s,
        name="the rule set",
        source=f"PostgreSQL at {settings.host}:{settings.port}",
        missing_hint="activate one (PUT /rules; docs/rules.md); the model decides alone",
        refusals=(RuleSetError,),
    )
