"""One partition of a micro-batch: from the stages' rows to scored output rows.

Row shape in (one per accepted transaction, from the card and merchant stages): the
transaction (``schema.Transaction``, from its contract columns), its ``card_features``
and merchant features, the Kafka ``partition``, ``offset`` and ``kafka_ts_ms``
(CreateTime) and the late flags.

Row shape out (``ScoredBatch``): the transactions, their full feature matrix in
catalogue order (transaction, card, merchant), the champion's scores and reasons,
optional shadow scores, the decisions of the active rule set and the model
(``rules.decision``: outcome, deciding rule, every fired rule, the set's version), and the
three clocks: event time, ingest time (Kafka CreateTime) and ``scored_at``.
``prediction``, ``reasons_json``, ``reason_detail`` and ``features_json`` render them for
the sinks. Pure: no Kafka, Postgres or Spark here.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cached_property
from typing import Any

import numpy as np
import orjson

from fraudstream.features.catalogue import CARD_FEATURES, FEATURE_SET_VERSION, feature_names
from fraudstream.features.events import TxnEvent, from_record
from fraudstream.features.vector import feature_matrix
from fraudstream.rules.decision import Decisions, decide_scored
from fraudstream.rules.ruleset import RuleSet
from fraudstream.schema import Transaction
from fraudstream.schema.model import format_timestamp
from fraudstream.scoring.model import Scores, ScoringModel, score


@dataclass(frozen=True)
class Accepted:
    """One accepted transaction as the card stage hands it to the driver."""

    txn: Transaction
    card_features: tuple[float, ...]
    partition: int
    offset: int
    kafka_ts_ms: int
    late: bool

    @property
    def event(self) -> TxnEvent:
        return from_record(self.txn)


def accepted_from(
    txn: Transaction,
    card_features: Any,
    partition: int,
    offset: int,
    kafka_ts_ms: int,
    late: bool,
) -> Accepted:
    if len(card_features) != len(CARD_FEATURES):
        raise ValueError(f"{len(card_features)} card features, expected {len(CARD_FEATURES)}")
    return Accepted(
        txn,
        tuple(float(v) for v in card_features),
        int(partition),
        int(offset),
        int(kafka_ts_ms),
        bool(late),
    )


@dataclass(frozen=True)
class ScoredBatch:
    """A micro-batch's transactions with features, scores and clocks, aligned by row."""

    rows: list[Accepted]
    features: np.ndarray
    late: list[bool]
    champion: ScoringModel
    scores: Scores
    shadow: ScoringModel | None
    shadow_scores: np.ndarray | None
    scored_at: datetime
    decisions: Decisions | None = None
    """The rules' and the model's decisions (None: not decided, as in some benchmarks)."""

    def __len__(self) -> int:
        return len(self.rows)

    @cached_property
    def scored_at_text(self) -> str:
        """``scored_at`` as the Kafka records carry it, formatted once per batch."""
        return self.scored_at.isoformat().replace("+00:00", "Z")

    def features_json(self, i: int) -> str:
        """Feature name -> value for row i (NaN as null), for ``transactions_with_score``."""
        values = self.features[i].tolist()
        return orjson.dumps(
            {
                n: (None if math.isnan(v) else v)
                for n, v in zip(feature_names(), values, strict=True)
            }
        ).decode()

    def reasons_json(self, i: int) -> str:
        return orjson.dumps([name for name, _, _ in self.scores.reasons[i]]).decode()

    def reason_detail(self, i: int) -> list[dict[str, Any]]:
        return [
            {"feature": n, "value": None if math.isnan(v) else v, "contribution": c}
            for n, v, c in self.scores.reasons[i]
        ]

    def prediction(self, i: int) -> dict[str, Any]:
        """The ``fraud_predictions`` record of row i (also the ``fraud_alerts`` record)."""
        row, txn = self.rows[i], self.rows[i].txn
        record: dict[str, Any] = {
            "transaction_id": txn.transaction_id,
            "card_id": txn.card_id,
            "merchant_id": txn.merchant_id,
            "amount": txn.amount,
            "currency": txn.currency,
            "score": float(self.scores.score[i]),
            "threshold": self.champion.threshold,
            "decision": "alert" if self.scores.alert[i] else "pass",
            "model_version": self.champion.version,
            "feature_set_version": FEATURE_SET_VERSION,
            "reason_codes": self.reason_detail(i),
            "reason_method": "shap" if self.scores.exact[i] else "path",
            "event_time": format_timestamp(txn.event_time),
            "ingest_time": _iso(row.kafka_ts_ms / 1000),
            "scored_at": self.scored_at_text,
            "late_event": self.late[i],
            "source_partition": row.partition,
            "source_offset": row.offset,
        }
        if (d := self.decisions) is not None:  # as ``POST /score`` answers it
            record["outcome"], record["reason"] = d.decision[i], d.reason[i]
            record["fired_rules"], record["rules_version"] = d.fired(i), d.version
        if self.shadow is not None and self.shadow_scores is not None:
            record["shadow"] = {
                "model_version": self.shadow.version,
                "score": float(self.shadow_scores[i]),
            }
        return record


def _iso(seconds: float) -> str:
    return (
        datetime.fromtimestamp(seconds, UTC)
        .isoformat(timespec="milliseconds")
        .replace("+00:00", "Z")
    )


def assemble(
    rows: list[Accepted], merchant: Sequence[Sequence[float]], merchant_late: Sequence[bool]
) -> tuple[np.ndarray, list[bool]]:
    """Full feature vectors in catalogue order (transaction, card, merchant) and late flags.

    ``merchant`` holds each row's merchant features (``MerchantBucket.step``); a row is
    late when its card or its merchant had a later transaction already.
    """
    matrix = feature_matrix([r.event for r in rows], [r.card_features for r in rows], merchant)
    late = [bool(r.late or m) for r, m in zip(rows, merchant_late, strict=True)]
    return matrix, late


def score_rows(
    rows: list[Accepted],
    features: np.ndarray,
    late: list[bool],
    champion: ScoringModel,
    shadow: ScoringModel | None,
    scored_at: datetime,
    rules: RuleSet | None = None,
    fields: Mapping[str, Any] | None = None,
) -> ScoredBatch:
    """The champion's scores with reasons, the shadow's scores and every row's decision
    (``rules`` with the champion; the champion alone when None) of assembled rows.
    ``fields``: the transaction fields the rules read, one value per row, when the caller
    holds them as columns already (else they are read from ``rows``)."""
    scores = score(champion, features)
    shadow_scores = score(shadow, features, with_reasons=False).score if shadow else None
    if fields is None:
        fields = {n: [getattr(r.txn, n) for r in rows] for n in rules.fields} if rules else {}
    decisions = decide_scored(rules, features, fields, scores.score, champion.threshold)
    return ScoredBatch(
        rows, features, late, champion, scores, shadow, shadow_scores, scored_at, decisions
    )
