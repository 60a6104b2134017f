"""The live rule set: checked before it is stored and activated, kept with its history.

``activate`` checks a document with ``rules.ruleset.parse_rule_set`` (the checks of
`fraudstream rules check`) and only then stores and activates it (``adapters.rule_sets``):
an invalid set raises ``RuleSetError`` naming the rule and the fix, and the active set stays.
``scoring.reload.rule_set_holder`` serves the active set to a process (the API's workers,
the scorer) the way the champion is served: polled, swapped between uses, a set this code
cannot load refused and the current one kept.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fraudstream.adapters import rule_sets as store
from fraudstream.adapters.rule_sets import Activation, VersionTakenError
from fraudstream.rules.ruleset import RuleSet, parse_rule_set
from fraudstream.settings import PostgresSettings

__all__ = ["Activation", "VersionTakenError", "activate", "active", "history"]


@dataclass(frozen=True)
class ActiveRuleSet:
    """The active set, checked, with its document and the activation that made it active."""

    rule_set: RuleSet
    document: dict[str, Any]
    activation: Activation


def activate(
    settings: PostgresSettings, document: Any, activated_by: str, comment: str = ""
) -> tuple[RuleSet, Activation]:
    """Check ``document`` (a rule set file's mapping), store it and make it the active set.

    Raises ``RuleSetError`` for an invalid set and ``VersionTakenError`` for a used version with
    other rules; either way nothing is stored and the active set stays.
    """
    rule_set = parse_rule_set(document, "the rule set")
    activation = store.store_and_activate(
        settings, rule_set.version, document, activated_by, comment
    )
    return rule_set, activation


def active(settings: PostgresSettings) -> ActiveRuleSet | None:
    """The active set (None: none was ever activated). Raises ``RuleSetError`` when the
    stored set no longer loads (a feature it reads left the catalogue)."""
    found = store.active(settings)
    if found is None:
        return None
    where = f"active rule set {found.activation.version!r}"
    return ActiveRuleSet(parse_rule_set(found.document, where), found.document, found.activation)


def history(settings: PostgresSettings, limit: int = 50) -> list[Activation]:
    """The latest activations, newest first."""
    return store.history(settings, limit)
