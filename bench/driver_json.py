"""The JSON a micro-batch's rows cross in the scorer, per row: orjson against the standard
library's json, on the same rows in the same run (measured when these steps ran on the
driver; they now run in the merchant and scoring stages' tasks).

Prints figures, asserts nothing; needs no platform. Live transactions of a generated
history's cards go through the card stage's Python (``process_bucket``) and the scoring
(``accepted_from``, a merchant bucket, ``score_rows``, a small XGBoost), as in the scorer. Then
each JSON step the rows take is timed both ways, alternating, for --rounds rounds:

- ``prediction``: the ``fraud_predictions`` / ``fraud_alerts`` Kafka value of each row
  (``ScoredBatch.prediction``, rendered by ``scoring.score_stage.scored_frame``);
- ``features``: the ``features`` column of ``transactions_with_score``
  (``ScoredBatch.features_json``);
- ``alert_reasons``: the reason codes of ``fraud_alerts`` rows, timed on every row.

``stdlib`` is the encoding the scorer used before (``json.dumps`` with the same arguments,
``json.loads``); ``orjson`` is the scorer's now. Figures are medians in µs per row and the
ratio stdlib / orjson. Both give the same values back (checked here on every row before
timing; the unit tests check the features bit for bit).

Usage: python bench/driver_json.py [--batch-size 3000] [--rounds 7]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import numpy as np
import orjson
from xgboost import XGBClassifier

from fraudstream.features.catalogue import FEATURE_SET_VERSION, feature_names
from fraudstream.generator import GeneratorConfig, generate
from fraudstream.schema.tables import wire_records
from fraudstream.scoring.batch import (
    Accepted,
    ScoredBatch,
    accepted_from,
    assemble,
    score_rows,
)
from fraudstream.scoring.cards import BucketState, Message, StageRow, process_bucket
from fraudstream.scoring.merchants import MerchantBucket, MerchantTxn
from fraudstream.scoring.model import ScoringModel
from fraudstream.validation import TransactionValidator

START = datetime(2026, 3, 2, tzinfo=UTC)
NUMPY = orjson.OPT_SERIALIZE_NUMPY


def stage_rows(batch_size: int) -> list[StageRow]:
    """One batch of live transactions of known cards through the card stage's Python."""
    data = generate(GeneratorConfig(seed=9, start=START, days=14, customers=2000, merchants=300))
    pool = [json.loads(v) for _, _, v in wire_records(data.transactions, "transaction")]
    now = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    live = [
        {**pool[i], "transaction_id": f"p{uuid.uuid4().hex[:16]}", "event_time": now}
        for i in range(batch_size)
    ]
    sent_ms = int(time.time() * 1000)
    messages = [
        Message(json.dumps(t).encode(), None, "transactions", i % 6, i, sent_ms)
        for i, t in enumerate(live)
    ]
    rows = process_bucket(BucketState(), messages, TransactionValidator(), datetime.now(UTC))
    return [r for r in rows if r.reason is None]


def _scored(rows: list[StageRow]) -> ScoredBatch:
    accepted, features, late, champion = scoring_inputs(rows)
    return score_rows(accepted, features, late, champion, None, datetime.now(UTC))


def scoring_inputs(
    rows: list[StageRow],
) -> tuple[list[Accepted], np.ndarray, list[bool], ScoringModel]:
    """What the scoring stage scores: the accepted rows, their feature matrix and late
    flags (merchant features from a merchant bucket), and a small XGBoost champion."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2000, len(feature_names())))
    model = XGBClassifier(n_estimators=100, max_depth=6, n_jobs=1, random_state=0)
    model.fit(x, (x[:, 0] + x[:, 5] > 1.5).astype(int))
    champion = ScoringModel(model, "7", 0.3, FEATURE_SET_VERSION)
    accepted = [
        accepted_from(r.txn, r.card_features, 0, i, 0, r.late)
        for i, r in enumerate(rows)
        if r.txn is not None
    ]
    events = [a.event for a in accepted]
    released = MerchantBucket(lambda _: None, lambda _: None).step(
        [MerchantTxn(e.transaction_id, e.merchant_id, e.time) for e in events], []
    )
    merchant = {r.txn.transaction_id: r.features for r in released}
    features, late = assemble(
        accepted, [merchant[e.transaction_id] for e in events], [False] * len(accepted)
    )
    return accepted, features, late, champion


def _ways(batch: ScoredBatch) -> dict[str, dict[str, Callable[[], Any]]]:
    predictions = [batch.prediction(i) for i in range(len(batch))]
    features = [
        {
            n: (None if np.isnan(v) else v)
            for n, v in zip(feature_names(), row.tolist(), strict=True)
        }
        for row in batch.features
    ]
    reasons = [batch.reason_detail(i) for i in range(len(batch))]
    compact = {"separators": (",", ":")}
    return {
        "prediction": {
            "stdlib": lambda: [json.dumps(p, **compact).encode() for p in predictions],
            "orjson": lambda: [orjson.dumps(p, option=NUMPY) for p in predictions],
        },
        "features": {
            "stdlib": lambda: [json.dumps(f) for f in features],
            "orjson": lambda: [orjson.dumps(f).decode() for f in features],
        },
        "alert_reasons": {
            "stdlib": lambda: [json.dumps(r) for r in reasons],
            "orjson": lambda: [orjson.dumps(r, option=NUMPY).decode() for r in reasons],
        },
    }


def _same_values(ways: dict[str, dict[str, Callable[[], Any]]]) -> None:
    for step, pair in ways.items():
        old, new = pair["stdlib"](), pair["orjson"]()
        decode = [json.loads(v) if isinstance(v, str | bytes) else v for v in old]
        again = [json.loads(v) if isinstance(v, str | bytes) else v for v in new]
        if decode != again:
            raise SystemExit(f"{step}: orjson and json give different values")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch-size", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    print(json.dumps({"machine": {"cpus": os.cpu_count(), "load_avg_1m": os.getloadavg()[0]}}))
    rows = stage_rows(args.batch_size)
    ways = _ways(_scored(rows))
    _same_values(ways)
    timings: dict[str, dict[str, list[float]]] = {s: {"stdlib": [], "orjson": []} for s in ways}
    for _ in range(args.rounds):
        for step, pair in ways.items():
            for name, run in pair.items():
                started = time.perf_counter()
                run()
                timings[step][name].append((time.perf_counter() - started) * 1e6 / len(rows))
    us = {
        s: {n: round(statistics.median(t), 2) for n, t in pair.items()}
        for s, pair in timings.items()
    }
    total = {n: round(sum(us[s][n] for s in us), 2) for n in ("stdlib", "orjson")}
    print(
        json.dumps(
            {
                "driver_json_us_per_row": us,
                "total_us_per_row": total,
                "ratio_stdlib_over_orjson": {
                    s: round(v["stdlib"] / v["orjson"], 1)
                    for s, v in {**us, "total": total}.items()
                },
                "rows": len(rows),
                "rounds": args.rounds,
                "load_avg_1m": round(os.getloadavg()[0], 2),
            }
        )
    )


if __name__ == "__main__":
    main()
