"""One decision per transaction from the rules and the model, batch or single row.

Precedence, first match wins (``PRECEDENCE``):

1. an ``approve`` rule fired (an allow list): **approve**, whatever else fired;
2. a ``decline`` rule fired: **decline**;
3. the model's score is at or above its threshold: **review** (the model's alert);
4. a ``review`` rule fired: **review**;
5. otherwise **approve**.

Within a tier the deciding rule is the first fired in priority order (lower first, then
name); ``reason`` names it, or ``model``, or is empty for a plain approval. Every rule that
fired is kept beside the decision with the rule set's version, whatever decided.

Row shape in (batch): a DataFrame with the columns the rules read (features, transaction
fields, ``score``; an optional contract field may be absent and reads as missing).
Single row: a mapping of the same names to Python values. Scored vectors (the stream's
scoring stage): ``decide_scored`` takes the feature matrix in catalogue order, the
transactions' fields by name and the scores, and decides without a rule set too (the model
alone: review at its threshold, approve under it).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd

from fraudstream.features.catalogue import feature_names
from fraudstream.rules.ruleset import SCORE, RuleSet, optional_columns, vocabulary
from fraudstream.rules.values import Columns, Kind, Row

PRECEDENCE = ("approve rule", "decline rule", "model threshold", "review rule", "approve")
MODEL = "model"


class RuleInputError(KeyError):
    """A batch lacks a column the rules read (a feature, a required field or ``score``)."""

    def __str__(self) -> str:
        return str(self.args[0])


@dataclass(frozen=True)
class Decision:
    """One transaction's decision, the rule or ``model`` that made it, every fired rule."""

    decision: str
    reason: str
    fired: tuple[str, ...]
    version: str | None
    """The rule set's version; None when the model decided alone (no set)."""


@dataclass(frozen=True)
class Decisions:
    """A batch's decisions: ``hits`` is rows x rules (``RuleSet.rules`` order)."""

    decision: np.ndarray
    reason: np.ndarray
    hits: np.ndarray
    rule_names: tuple[str, ...]
    version: str | None
    """The rule set's version; None when the model decided alone (no set)."""

    def fired(self, row: int) -> tuple[str, ...]:
        """The names of the rules that fired on ``row``, in evaluation order."""
        return tuple(self._fired[row])

    def fired_lists(self) -> list[list[str]]:
        """Every row's fired rule names (for a sink's array column)."""
        return [list(names) for names in self._fired]

    def fired_or_none(self) -> list[tuple[str, ...] | None]:
        """Every row's fired rule names, None where none fired: the stream's column, which
        allocates nothing for the rows no rule fired on (most of them)."""
        return [names or None for names in self._fired]

    @cached_property
    def _fired(self) -> list[tuple[str, ...]]:
        """Every row's fired names, worked out once: one tuple per distinct combination of
        fired rules, shared by its rows (a partition allocates a handful, not one per row)."""
        fired: list[tuple[str, ...]] = [()] * len(self.decision)
        rows = np.flatnonzero(self.hits.any(axis=1)) if self.hits.size else np.empty(0, int)
        if rows.size:
            names = np.asarray(self.rule_names, dtype=object)
            patterns, which = np.unique(self.hits[rows], axis=0, return_inverse=True)
            shared = [tuple(names[p].tolist()) for p in patterns]
            for row, k in zip(rows.tolist(), which.ravel().tolist(), strict=True):
                fired[row] = shared[k]
        return fired


def batch_columns(rule_set: RuleSet, frame: pd.DataFrame) -> Columns:
    """The arrays the rules read, typed: float64 numbers (NaN missing), object strings."""
    return _columns(rule_set, dict(frame.items()), len(frame))


def _columns(rule_set: RuleSet, found: Mapping[str, Any], n: int) -> Columns:
    """``found``'s columns the rules read (a Series, an array or a list each), typed; an
    absent optional field reads as missing, any other absent name is a ``RuleInputError``."""
    kinds: Mapping[str, Kind] = vocabulary().columns
    optional = optional_columns()
    columns: dict[str, np.ndarray] = {}
    for name in sorted(rule_set.names):
        number = kinds[name] == "number"
        values = found.get(name)
        if values is None and name not in optional:
            raise RuleInputError(f"the rules read {name!r}, which the batch lacks")
        if values is None:
            columns[name] = np.full(n, np.nan if number else None, float if number else object)
        elif isinstance(values, pd.Series):
            columns[name] = (
                pd.to_numeric(values).to_numpy(dtype=np.float64, na_value=np.nan)
                if number
                else values.to_numpy(dtype=object, na_value=None)
            )
        else:  # an array or a list (None: missing, which float64 reads as NaN)
            columns[name] = np.asarray(values, dtype=np.float64 if number else object)
    return columns


def evaluate(rule_set: RuleSet, frame: pd.DataFrame) -> np.ndarray:
    """Rows x rules booleans: which rule fired on which row (vectorised over the batch)."""
    return _hits(rule_set, batch_columns(rule_set, frame), len(frame))


def _hits(rule_set: RuleSet, columns: Columns, n: int) -> np.ndarray:
    hits = np.zeros((n, len(rule_set.rules)), dtype=bool)
    for j, rule in enumerate(rule_set.rules):
        hits[:, j] = np.broadcast_to(np.asarray(rule.expr.vec(columns), dtype=bool), (n,))
    return hits


def decide(rule_set: RuleSet, frame: pd.DataFrame, threshold: float | None) -> Decisions:
    """Every row's decision (see the module doc); ``threshold`` None: no model tier."""
    score = batch_score(frame) if threshold is not None else None
    return _decide(rule_set, evaluate(rule_set, frame), score, threshold)


def _decide(
    rule_set: RuleSet, hits: np.ndarray, score: np.ndarray | None, threshold: float | None
) -> Decisions:
    n = len(hits)
    decision = np.full(n, "approve", dtype=object)
    reason = np.full(n, "", dtype=object)
    names = np.asarray([r.name for r in rule_set.rules], dtype=object)
    outcomes = np.asarray([r.outcome for r in rule_set.rules], dtype=object)

    def first_of(outcome: str) -> tuple[np.ndarray, np.ndarray]:
        tier = hits & (outcomes == outcome)
        return tier.any(axis=1), names[tier.argmax(axis=1)] if len(names) else reason

    # Lowest precedence first, each tier overwriting the ones below it.
    fired, first = first_of("review")
    decision[fired], reason[fired] = "review", first[fired]
    if threshold is not None and score is not None:
        alert = score >= threshold
        decision[alert], reason[alert] = "review", MODEL
    fired, first = first_of("decline")
    decision[fired], reason[fired] = "decline", first[fired]
    fired, first = first_of("approve")
    decision[fired], reason[fired] = "approve", first[fired]
    return Decisions(decision, reason, hits, tuple(names.tolist()), rule_set.version)


def decide_scored(
    rule_set: RuleSet | None,
    features: np.ndarray,
    fields: Mapping[str, Any],
    score: np.ndarray,
    threshold: float,
) -> Decisions:
    """Every scored row's decision: ``features`` rows x catalogue features, ``fields`` the
    transactions' contract fields the set reads (name -> one value per row; an absent
    optional field reads as missing), ``score`` the model's. Without a set the model
    decides alone, with the tiers ``decide`` gives an empty set. No DataFrame is built:
    the stream decides every partition, and pandas' per-call costs would be most of it."""
    score = np.asarray(score, dtype=np.float64)
    if rule_set is None:
        alert = score >= threshold
        return Decisions(
            np.where(alert, "review", "approve").astype(object),
            np.where(alert, MODEL, "").astype(object),
            np.zeros((len(alert), 0), dtype=bool),
            (),
            None,
        )
    where = {name: j for j, name in enumerate(feature_names())}
    found: dict[str, Any] = {n: features[:, where[n]] for n in rule_set.names if n in where}
    found.update((n, fields[n]) for n in rule_set.names if n not in where and n in fields)
    found[SCORE] = score
    n = len(score)
    return _decide(rule_set, _hits(rule_set, _columns(rule_set, found, n), n), score, threshold)


def batch_score(frame: pd.DataFrame) -> np.ndarray:
    """The ``score`` column as float64 (NaN: no model scored the row)."""
    if SCORE not in frame.columns:
        raise RuleInputError("the batch has no 'score' column (NaN where no model scored)")
    score: np.ndarray = pd.to_numeric(frame[SCORE]).to_numpy(dtype=np.float64, na_value=np.nan)
    return score


def decide_one(rule_set: RuleSet | None, row: Row, threshold: float | None) -> Decision:
    """One transaction's decision: the same rules and precedence as ``decide``, without
    pandas (the API's path). An absent name reads as missing. Without a set the model
    decides alone, as ``decide_scored`` decides a partition without one."""
    if rule_set is None:
        return Decision(*_model_alone(row.get(SCORE), threshold), (), None)
    fired = tuple(r for r in rule_set.rules if r.expr.one(row))
    names = tuple(r.name for r in fired)

    def first(outcome: str) -> str | None:
        return next((r.name for r in fired if r.outcome == outcome), None)

    if (name := first("approve")) is not None:
        return Decision("approve", name, names, rule_set.version)
    if (name := first("decline")) is not None:
        return Decision("decline", name, names, rule_set.version)
    if (model := _model_alone(row.get(SCORE), threshold))[0] == "review":
        return Decision(*model, names, rule_set.version)
    if (name := first("review")) is not None:
        return Decision("review", name, names, rule_set.version)
    return Decision("approve", "", names, rule_set.version)


def _model_alone(score: float | None, threshold: float | None) -> tuple[str, str]:
    """(outcome, reason) of the model's tier: review at or above its threshold, else a
    plain approval (no score, NaN or no threshold included)."""
    if threshold is not None and score is not None and not math.isnan(score) and score >= threshold:
        return "review", MODEL
    return "approve", ""
