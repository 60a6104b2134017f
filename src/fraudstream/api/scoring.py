"""One transaction scored synchronously, with exactly the features the stream computes.

The card's and merchant's current states come from the online store (the stream
publishes them after every micro-batch). The features are computed by the same
``update_card``/``update_merchant``/``transaction_features`` the stream and the
offline builder run, on decoded *copies*: nothing is written back, so a what-if
score never changes the stream's state. A transaction older than its card's latest
one is scored the way the stream scores late data: on the current state.

The model runs in-process on one thread, through the scorer's own ``scoring.model.score``
on the one-row matrix: the score ``predict_proba`` gives, and the top three reasons (largest
positive contributions to the fraud log-odds) computed as the stream computes them: exact
TreeSHAP for an alert (what an analyst reads), the path attribution for a pass. One row
takes XGBoost's C functions directly (``scoring.one_row``).

The active rule set (``LiveRules``) then decides with the model's score, as
``rules.decision.decide_one`` does: the answer's ``outcome`` (approve, review, decline),
its ``reason`` (the deciding rule, ``model`` or empty), every fired rule and the set's
version. Without an active set the model decides alone: review at or above its threshold.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from fraudstream.adapters.online_store import States
from fraudstream.features.card import update_card
from fraudstream.features.catalogue import FEATURE_SET_VERSION, feature_names
from fraudstream.features.events import TxnEvent
from fraudstream.features.merchant import update_merchant
from fraudstream.features.vector import feature_vector
from fraudstream.rules import decision as rule_decision
from fraudstream.rules.ruleset import SCORE, RuleSet
from fraudstream.schema.jsonvalues import finite_float
from fraudstream.scoring.model import ScoringModel, score


@dataclass(frozen=True)
class Reason:
    feature: str
    value: float | None
    contribution: float


@dataclass(frozen=True)
class Decision:
    transaction_id: str
    score: float
    threshold: float
    decision: str  # "alert" | "pass"
    reason_codes: list[Reason]
    model_version: str
    feature_set_version: str
    features: dict[str, float | None]
    outcome: str  # "approve" | "review" | "decline": the rules' and the model's decision
    reason: str  # the deciding rule, "model", or "" for a plain approval
    fired_rules: tuple[str, ...]
    rules_version: str | None


@dataclass(frozen=True)
class LiveRules:
    """A rule set ready for one row at a time: which features (by their place in the
    vector) and which transaction fields its rules read, so a row holds only those."""

    rule_set: RuleSet
    features: tuple[tuple[str, int], ...]
    fields: tuple[str, ...]

    @classmethod
    def of(cls, rule_set: RuleSet) -> LiveRules:
        where = {name: i for i, name in enumerate(feature_names())}
        read = sorted(rule_set.names - {SCORE})
        return cls(rule_set, tuple((n, where[n]) for n in read if n in where), rule_set.fields)

    def decide(
        self, record: Any, values: tuple[float, ...], score: float, threshold: float
    ) -> rule_decision.Decision:
        """The rules' decision on one transaction (``record``: the validated transaction,
        a mapping or an object with its fields)."""
        row: dict[str, Any] = {name: values[i] for name, i in self.features}
        if isinstance(record, Mapping):
            row.update((name, record.get(name)) for name in self.fields)
        else:
            row.update((name, getattr(record, name, None)) for name in self.fields)
        row[SCORE] = score
        return rule_decision.decide_one(self.rule_set, row, threshold)


def features_on(txn: TxnEvent, states: States) -> tuple[float, ...]:
    """The catalogue-ordered features of ``txn`` on the given states (consumed: pass copies)."""
    _, card = update_card(states.card, txn)
    _, merchant = update_merchant(states.merchant, txn)
    return feature_vector(txn, card, merchant)


class Scorer:
    """The served model, deciding one transaction at a time. Thread-safe (XGBoost predict is).

    ``model`` is the scorer's ``ScoringModel``: its construction checked the booster's
    columns against the catalogue, once, so no call compares feature names.
    """

    def __init__(self, model: ScoringModel) -> None:
        self.model = model
        self.version, self.threshold = model.version, model.threshold
        self.feature_set_version = model.feature_set_version
        self.names = feature_names()

    def decide(
        self,
        txn: TxnEvent,
        states: States,
        record: Any = None,
        rules: LiveRules | None = None,
    ) -> Decision:
        """The decision on ``txn`` (``record``: its validated transaction, which ``rules``
        read their fields from; without ``rules`` the model decides alone)."""
        values = features_on(txn, states)
        x = np.asarray(values, dtype=np.float64).reshape(1, -1)
        scored = score(self.model, x)
        alert = bool(scored.alert[0])
        probability = float(scored.score[0])
        if rules is None:  # the model decides alone
            decided = rule_decision.decide_one(None, {SCORE: probability}, self.threshold)
        else:
            decided = rules.decide(record, values, probability, self.threshold)
        return Decision(
            transaction_id=txn.transaction_id,
            score=probability,
            threshold=self.threshold,
            decision="alert" if alert else "pass",
            reason_codes=[Reason(f, finite_float(v), c) for f, v, c in scored.reasons[0]],
            model_version=self.version,
            feature_set_version=FEATURE_SET_VERSION,
            features={n: finite_float(v) for n, v in zip(self.names, values, strict=True)},
            outcome=decided.decision,
            reason=decided.reason,
            fired_rules=decided.fired,
            rules_version=decided.version,
        )
