"""A rule set measured against labels, beside the model: per rule and for the whole set.

Row shape in: one row per transaction with the columns the rules read (features,
transaction fields, ``score``: NaN without a model) and ``is_fraud`` (0/1, the eventual
label). The model's alerts are ``score >= threshold``; with no threshold every model
figure is NaN.

Per rule: ``hits`` (rows where its condition holds, whatever decided), ``frauds`` among
them, ``precision`` = frauds / hits, ``recall`` = frauds / all frauds, ``alert_rate`` =
hits / rows, ``model_overlap`` = share of its hits the model also alerts on, and
``beyond_model`` = frauds it hits that the model misses. For the whole set the same
figures for: the rules alone (a decline or review decision without the model), the model
alone, model + rules (any decision but approve, ``decision.PRECEDENCE``), and the model
alone at the same alert count as model + rules (its top scores: the review budget held
equal). ``outcomes`` counts the rows per decision of model + rules (of the rules alone
without a model): decline, review, approve.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd

from fraudstream.rules.decision import batch_score, decide
from fraudstream.rules.ruleset import OUTCOMES, RuleSet


@dataclass(frozen=True)
class Line:
    """The figures of one rule or one way of deciding (see the module doc)."""

    name: str
    outcome: str
    hits: int
    frauds: int
    precision: float
    recall: float
    alert_rate: float
    model_overlap: float
    beyond_model: int | None


@dataclass(frozen=True)
class Backtest:
    """A rule set's backtest on ``rows`` transactions holding ``frauds`` frauds."""

    version: str
    rows: int
    frauds: int
    threshold: float | None
    outcomes: dict[str, int]
    rules: tuple[Line, ...]
    totals: tuple[Line, ...]

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready (NaN stays NaN: ``print_json`` writes it as null)."""
        return asdict(self)


def _line(
    name: str, outcome: str, flagged: np.ndarray, fraud: np.ndarray, model: np.ndarray | None
) -> Line:
    hits, frauds = int(flagged.sum()), int((flagged & fraud).sum())
    total = int(fraud.sum())
    overlap, beyond = float("nan"), None
    if model is not None:
        overlap = float((flagged & model).sum() / hits) if hits else float("nan")
        beyond = int((flagged & fraud & ~model).sum())
    return Line(
        name,
        outcome,
        hits,
        frauds,
        frauds / hits if hits else float("nan"),
        frauds / total if total else float("nan"),
        hits / len(flagged) if len(flagged) else float("nan"),
        overlap,
        beyond,
    )


def top_k(score: np.ndarray, k: int) -> np.ndarray:
    """The ``k`` highest scores flagged (ties by position; NaN scores last)."""
    flagged = np.zeros(len(score), dtype=bool)
    if k > 0:
        order = np.argsort(-np.nan_to_num(score, nan=-np.inf), kind="stable")
        flagged[order[:k]] = True
    return flagged


def backtest(rule_set: RuleSet, frame: pd.DataFrame, threshold: float | None) -> Backtest:
    """Evaluate ``rule_set`` on ``frame`` (see the module doc for the columns and figures)."""
    fraud = frame["is_fraud"].to_numpy(dtype=np.int64) == 1
    combined = decide(rule_set, frame, threshold)
    rules_only = combined if threshold is None else decide(rule_set, frame, None)
    model = None if threshold is None else batch_score(frame) >= threshold
    lines = tuple(
        _line(rule.name, rule.outcome, combined.hits[:, j], fraud, model)
        for j, rule in enumerate(rule_set.rules)
    )
    flagged = combined.decision != "approve"
    totals = [_line("rules", "decline/review", rules_only.decision != "approve", fraud, model)]
    if model is not None:
        budget = top_k(batch_score(frame), int(flagged.sum()))
        totals += [
            _line("model", "review", model, fraud, model),
            _line("model + rules", "decline/review", flagged, fraud, model),
            _line("model at the same alert count", "review", budget, fraud, model),
        ]
    outcomes: dict[str, int] = {o: int((combined.decision == o).sum()) for o in OUTCOMES}
    return Backtest(
        rule_set.version, len(frame), int(fraud.sum()), threshold, outcomes, lines, tuple(totals)
    )
