"""The scoring stage: features, scores, reason codes and the sinks, per partition, on the executors.

Each task takes its partition of the merchant stage's rows (``rows.MERCHANT_SCHEMA``,
``kind`` ``txn`` or ``dead``), assembles the feature vectors of the transactions
(``scoring.batch.assemble``), scores them with the champion (and the shadow), renders
every sink's payload once and hands the scored rows and the dead letters to the sinks
that write from the scoring tasks (Kafka, PostgreSQL: ``sinks.base``). It counts what it
scored, the dead letters it saw and the seconds each step took into the handler's
accumulator (``batch_counts``) once its sinks are flushed: the driver's metrics need no
rows back.

The driver names the model versions of the micro-batch (``ScoreStage.champion`` and
``shadow``, fixed when the batch starts, so a batch is scored by one version) and hands
it the active rule set (``rules``: the set itself, a few kilobytes, shipped with the
function; every row of the batch is decided by it and the champion, ``rules.decision``); each
Python worker loads a version from the registry once and keeps it for later batches
(``_WORKER_MODELS``). The driver has already loaded and checked a version (feature-set
version and columns) before naming it, so a refused version never reaches a worker.

Row shape out (``rows.SCORED_SCHEMA``): one row per scored transaction; clocks as epoch
microseconds (UTC): ``event_time_us`` from the event, ``ingest_time_us`` the Kafka
CreateTime, ``scored_at_us`` when its partition was scored.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
import orjson
import pandas as pd

from fraudstream.adapters.registry import load_model
from fraudstream.adapters.scorer_metrics import LATENCY_BUCKETS
from fraudstream.features.catalogue import FEATURE_SET_VERSION
from fraudstream.rules.ruleset import RuleSet
from fraudstream.schema import epoch_us
from fraudstream.scoring.batch import ScoredBatch, accepted_from, assemble, score_rows
from fraudstream.scoring.model import ScoringModel
from fraudstream.scoring.rows import TRANSACTION_COLUMNS, transaction_from, transaction_values
from fraudstream.scoring.sinks.base import Partition, Sink
from fraudstream.settings import Settings

_WORKER_MODELS: dict[tuple[str, str, str], ScoringModel] = {}
"""(tracking URI, model name, version) -> the loaded model, kept by this Python worker."""


def worker_model(settings: Settings, version: str, role: str) -> ScoringModel:
    """The model ``version``, loaded from the registry once per Python worker."""
    key = (settings.mlflow.uri, settings.mlflow.model_name, version)
    model = _WORKER_MODELS.get(key)
    if model is None:
        model = _WORKER_MODELS[key] = ScoringModel.checked(load_model(settings, version), role)
    return (
        model
        if model.role == role
        else ScoringModel(
            model.model, model.version, model.threshold, model.feature_set_version, role
        )
    )


DEAD_LETTER_COLUMNS = {"dead_letter_key": "key", "dead_letter": "value", "reason": "reason"}
"""A ``dead`` stage row's columns as the sinks take them (``sinks.base.Partition``)."""


@dataclass(frozen=True)
class ScoreStage:
    """``mapInPandas`` function of the scoring stage for one micro-batch: scores each
    Arrow batch of its partition and hands it to every sink that runs in the scoring
    tasks (``sinks.base``), then flushes them; yields the scored rows only when
    ``emit`` (a sink writes them with Spark's writer), else nothing."""

    settings: Settings
    champion: str
    shadow: str | None
    counts: Any = None
    """A Spark accumulator of ``Counter`` (``stream.CountsParam``), or None."""
    sinks: tuple[Sink, ...] = ()
    emit: bool = True
    rules: RuleSet | None = None
    """The rule set deciding beside the champion (None: the champion decides alone)."""

    def __call__(self, frames: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        champion = worker_model(self.settings, self.champion, "champion")
        shadow = worker_model(self.settings, self.shadow, "challenger") if self.shadow else None
        counts: Counter[Any] = Counter()
        clock = time.perf_counter
        for sink in self.sinks:
            sink.setup()
        for batch in frames:
            dead = batch["kind"] == "dead"
            dead_letters = None
            if dead.any():
                dead_letters = batch.loc[dead, list(DEAD_LETTER_COLUMNS)].rename(
                    columns=DEAD_LETTER_COLUMNS
                )
            began = clock()
            scored = self.score(batch[~dead], champion, shadow, self.rules)
            counts[("seconds", "scoring")] += clock() - began  # type: ignore[assignment]
            counts.update(
                batch_counts(scored, dead_letters["reason"] if dead_letters is not None else ())
            )
            part = Partition(scored, dead_letters)
            for sink in self.sinks:
                began = clock()
                sink.write(part)
                counts[("seconds", sink.name)] += clock() - began  # type: ignore[assignment]
            if self.emit and scored is not None:
                yield scored
        for sink in self.sinks:
            began = clock()
            sink.flush()
            counts[("seconds", sink.name)] += clock() - began  # type: ignore[assignment]
        if self.counts is not None:
            self.counts.add(counts)  # once every sink holds the task's rows durably

    @staticmethod
    def score(
        frame: pd.DataFrame,
        champion: ScoringModel,
        shadow: ScoringModel | None,
        rules: RuleSet | None = None,
    ) -> pd.DataFrame | None:
        """The scored rows (``rows.SCORED_SCHEMA``) of a partition's ``txn`` rows."""
        if not len(frame):
            return None
        txns = map(transaction_from, frame[TRANSACTION_COLUMNS].itertuples(index=False, name=None))
        rows = [
            accepted_from(t, f, p, o, ts, late)
            for t, f, p, o, ts, late in zip(
                txns, frame["card_features"], frame["partition"],
                frame["offset"], frame["kafka_ts_ms"], frame["late"], strict=True,
            )
        ]  # fmt: skip
        merchant = [tuple(m) for m in frame["merchant_features"]]
        features, late = assemble(rows, merchant, [False] * len(rows))
        now = datetime.now(UTC)
        fields = {n: frame[n].to_numpy() for n in rules.fields} if rules else None
        return scored_frame(score_rows(rows, features, late, champion, shadow, now, rules, fields))


def scored_frame(batch: ScoredBatch) -> pd.DataFrame:
    """The rows of ``rows.SCORED_SCHEMA`` of a scored partition."""
    n = len(batch)
    alert = batch.scores.alert
    predictions = [
        orjson.dumps(batch.prediction(i), option=orjson.OPT_SERIALIZE_NUMPY) for i in range(n)
    ]
    values = [transaction_values(r.txn) for r in batch.rows]
    return pd.DataFrame(
        {
            **{
                name: pd.Series([v[i] for v in values], dtype=object)
                for i, name in enumerate(TRANSACTION_COLUMNS)
            },
            "source_partition": [r.partition for r in batch.rows],
            "source_offset": [r.offset for r in batch.rows],
            "ingest_time_us": [r.kafka_ts_ms * 1000 for r in batch.rows],
            "scored_at_us": [epoch_us(batch.scored_at)] * n,
            "score": batch.scores.score,
            "is_alert": alert,
            "threshold": [batch.champion.threshold] * n,
            "model_version": [batch.champion.version] * n,
            "feature_set_version": [FEATURE_SET_VERSION] * n,
            "reason_codes": [batch.reasons_json(i) for i in range(n)],
            "reason_detail": [
                orjson.dumps(batch.reason_detail(i), option=orjson.OPT_SERIALIZE_NUMPY).decode()
                if alert[i]
                else None
                for i in range(n)
            ],
            "features": list(batch.features),
            "features_json": [batch.features_json(i) for i in range(n)],
            "shadow_score": (
                np.full(n, np.nan) if batch.shadow_scores is None else batch.shadow_scores
            ),
            "shadow_model_version": [None if batch.shadow is None else batch.shadow.version] * n,
            "late_event": batch.late,
            "prediction": predictions,
            **decision_columns(batch),
        }
    )


def decision_columns(batch: ScoredBatch) -> dict[str, Any]:
    """The decision columns of ``rows.SCORED_SCHEMA`` (nulls when the batch is undecided)."""
    n, decided = len(batch), batch.decisions
    if decided is None:
        return {
            "outcome": [None] * n,
            "outcome_reason": [None] * n,
            "fired_rules": [None] * n,
            "rules_version": [None] * n,
        }
    return {
        "outcome": decided.decision,
        "outcome_reason": decided.reason,
        "fired_rules": decided.fired_or_none(),
        "rules_version": [decided.version] * n,
    }


def batch_counts(scored: pd.DataFrame | None, dead_reasons: Iterable[Any]) -> Counter[Any]:
    """What a scoring task adds to the handler's accumulator: rows scored, alerts, late
    rows, decisions per outcome, hits per rule, latencies (``scored_at - ingest_time``,
    seconds: at or under each metrics bucket, summed, and per 10 ms step) and dead
    letters per reason."""
    counts: Counter[Any] = Counter(("dead", str(r)) for r in dead_reasons)
    if scored is None or not len(scored):
        return counts
    latency = (scored["scored_at_us"] - scored["ingest_time_us"]).to_numpy() / 1_000_000
    counts["scored"] += len(scored)
    counts["alerts"] += int(scored["is_alert"].sum())
    counts["late"] += int(scored["late_event"].sum())
    for outcome, n in scored["outcome"].value_counts().items():
        counts[("outcome", str(outcome))] += int(n)
    counts.update(("rule", str(r)) for fired in scored["fired_rules"] if fired for r in fired)
    counts["latency_sum"] += float(latency.sum())  # type: ignore[assignment]
    for i, bound in enumerate(LATENCY_BUCKETS):
        counts[("le", i)] += int((latency <= bound).sum())
    counts.update(("10ms", int(v)) for v in (latency * 100).round())
    return counts
