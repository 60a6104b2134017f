"""Benchmark rule evaluation against the per-row cost of scoring without rules.

Prints JSON lines (figures and ratios), never asserts. On the same feature rows, in the same run:

- batch (the stream's per-partition path, a backtest): the starter rules plus synthetic
  ones up to ``--rules`` (decision included) per row, against XGBoost's ``predict_proba``
  per row (the scoring step rules sit beside) and against the feature replay per row;
- single row (the API's path): ``decide_one`` with ``--rules`` rules, p50/p99 in µs,
  against XGBoost's ``predict_proba`` on one row.
- stream (the scoring stage's per-partition work, ``score_rows`` and ``scored_frame``: the
  scores, reasons, decisions and the sinks' columns): per row with the ``--rules`` rules
  active against no active set, on the same partition, interleaved A B B A for
  ``--rounds`` rounds; medians and the added share.

    .venv/bin/python bench/rules.py [--rows 200000] [--rules 20] [--partition 5000]

The model is XGBoost fitted here on a small generated history (its size, not its
quality, sets the cost: ``--trees`` of depth 6); the rows are that history's features.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import numpy as np
from xgboost import XGBClassifier

from fraudstream.features.catalogue import feature_names
from fraudstream.features.replay import attach_labels, build_features
from fraudstream.generator.config import GeneratorConfig
from fraudstream.generator.history import generate
from fraudstream.rules.decision import decide, decide_one
from fraudstream.rules.ruleset import RuleSet, parse_rule_set, starter_rule_set
from fraudstream.scoring.batch import score_rows
from fraudstream.scoring.model import score
from fraudstream.scoring.score_stage import scored_frame

SYNTHETIC = (
    "card_count_24h > 40 and card_amount_mean_24h > 200",
    "card_amount_zscore_30d > 4 or card_amount_ratio_30d > 25",
    "merchant_fraud_risk_7d > 0.2 and amount > 300",
    "card_new_merchant_30d == 1 and card_new_category_30d == 1 and amount > 800",
    "txn_is_night == 1 and channel == 'ecom' and amount > 1500",
    "country in ['KP', 'IR', 'SY'] or currency not in ['EUR', 'USD', 'GBP', 'PLN', 'SEK']",
    "card_distinct_merchants_24h >= 8",
    "abs(card_amount_mean_1h - card_amount_mean_30d) > 2000",
    "score > 0.2 and card_speed_kmh_prev > 300",
    "coalesce(merchant_mature_fraud_risk_30d, 0) > 0.3",
    "card_seconds_since_prev < 20 and amount > 50",
    "max(card_count_1h, card_distinct_merchants_1h) >= 6",
    "merchant_count_1d > 500 and amount / coalesce(card_amount_mean_30d, 1) > 10",
)


def rule_set_of(count: int) -> RuleSet:
    """The starter's rules and synthetic ones, ``count`` in all, checked."""
    return parse_rule_set(rule_document(count))


def rule_document(count: int) -> dict[str, Any]:
    """``rule_set_of``'s set as a rule set file's mapping (what `PUT /rules` takes)."""
    base = starter_rule_set()
    rules = [
        {"name": r.name, "condition": r.condition, "outcome": r.outcome, "priority": r.priority}
        for r in base.rules
    ]
    for i in range(count - len(rules)):
        condition = SYNTHETIC[i % len(SYNTHETIC)]
        rules.append({"name": f"synthetic_{i}", "condition": condition, "outcome": "review"})
    lists = {name: list(values) for name, values in base.lists.items()}
    return {"version": f"bench-{count}", "lists": lists, "rules": rules[:count]}


def per_row_us(fn: Callable[[], Any], rows: int, repeat: int = 3) -> float:
    best = min(_timed(fn) for _ in range(repeat))
    return best / rows * 1e6


def _timed(fn: Callable[[], Any]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--rules", type=int, default=20)
    parser.add_argument("--trees", type=int, default=200)
    parser.add_argument("--single", type=int, default=5_000, help="single-row calls timed")
    parser.add_argument("--partition", type=int, default=5_000, help="stream partition rows")
    parser.add_argument("--rounds", type=int, default=5, help="stream A B B A rounds")
    args = parser.parse_args()

    config = GeneratorConfig(days=10, customers=6_000, merchants=1_200, fraud_rate=0.01)
    data = generate(config)
    txns = data.transactions.to_pandas()
    labels = data.labels.to_pandas()
    t0 = time.perf_counter()
    features = build_features(txns, labels)
    replay_us = (time.perf_counter() - t0) / len(features) * 1e6
    rows = attach_labels(features, labels).merge(
        txns.drop(columns=["event_time", "card_id"]), on="transaction_id"
    )
    rows = rows.sample(n=args.rows, replace=len(rows) < args.rows, random_state=1)
    rows = rows.reset_index(drop=True)
    x = rows[feature_names()].to_numpy(dtype=np.float64)
    model = XGBClassifier(n_estimators=args.trees, max_depth=6, tree_method="hist", n_jobs=1)
    model.fit(x, rows["is_fraud"].to_numpy())
    rows["score"] = model.predict_proba(x)[:, 1]
    rule_set = rule_set_of(args.rules)

    model_us = per_row_us(lambda: model.predict_proba(x), len(rows))
    rules_us = per_row_us(lambda: decide(rule_set, rows, 0.5), len(rows))
    common = {"bench": "rules", "rows": len(rows), "rules": len(rule_set.rules)}
    common["trees"] = args.trees
    batch = {
        "path": "batch",
        "replay_us_per_row": round(replay_us, 3),
        "model_us_per_row": round(model_us, 3),
        "rules_us_per_row": round(rules_us, 3),
        "rules_over_model": round(rules_us / model_us, 4),
        "rules_over_replay_and_model": round(rules_us / (replay_us + model_us), 4),
    }
    print(json.dumps(common | batch))

    records = rows.head(args.single).to_dict("records")
    single = [x[i : i + 1] for i in range(args.single)]
    one_rule, one_model = [], []
    for record, vector in zip(records, single, strict=True):
        t = time.perf_counter()
        decide_one(rule_set, record, 0.5)
        one_rule.append(time.perf_counter() - t)
        t = time.perf_counter()
        model.predict_proba(vector)
        one_model.append(time.perf_counter() - t)
    single_row = {"path": "single row", "calls": args.single}
    for name, times in (("rules", one_rule), ("model", one_model)):
        ordered = sorted(times)
        single_row[f"{name}_p50_us"] = round(statistics.median(times) * 1e6, 1)
        single_row[f"{name}_p99_us"] = round(ordered[int(0.99 * len(ordered))] * 1e6, 1)
    single_row["rules_over_model_p50"] = round(
        statistics.median(one_rule) / statistics.median(one_model), 4
    )
    print(json.dumps(common | single_row))
    print(json.dumps(common | stream_cost(rule_set, args.partition, args.rounds)))


ALERT_SHARE = 0.005


def stream_cost(rule_set: RuleSet, partition: int, rounds: int) -> dict[str, Any]:
    """The scoring stage's per-row cost on one partition, without and with ``rule_set``."""
    from driver_json import scoring_inputs, stage_rows

    accepted, features, late, champion = scoring_inputs(stage_rows(partition))
    # The threshold at the scores' top 0.5 %: alerts (exact TreeSHAP reasons, alert records)
    # as rare as in production, so the stage is not made dearer, and the rules' share
    # smaller, by an alert on every row.
    scores = score(champion, features, with_reasons=False).score
    champion = replace(champion, threshold=float(np.quantile(scores, 1 - ALERT_SHARE)))

    # The fields the set reads, as the stage holds them: columns of its partition's frame.
    fields = {n: np.asarray([getattr(a.txn, n) for a in accepted]) for n in rule_set.fields}

    def stage(rules: RuleSet | None) -> Callable[[], Any]:
        return lambda: scored_frame(
            score_rows(
                accepted, features, late, champion, None, datetime.now(UTC), rules,
                fields if rules else None,
            )
        )  # fmt: skip

    plain, ruled = stage(None), stage(rule_set)
    outcomes = ruled()["outcome"]  # also warms numpy's ufunc caches
    fired = score_rows(accepted, features, late, champion, None, datetime.now(UTC), rule_set)
    assert fired.decisions is not None
    without: list[float] = []
    with_rules: list[float] = []
    for _ in range(rounds):
        for fn, times in ((plain, without), (ruled, with_rules), (ruled, with_rules),
                          (plain, without)):  # fmt: skip
            times.append(_timed(fn) / len(accepted) * 1e6)
    base, more = statistics.median(without), statistics.median(with_rules)
    return {
        "path": "stream scoring stage",
        "partition_rows": len(accepted),
        "rounds": rounds,
        "stage_us_per_row": round(base, 2),
        "stage_with_rules_us_per_row": round(more, 2),
        "rules_added_share": round((more - base) / base, 4),
        "rows_a_rule_fired_on": round(float(fired.decisions.hits.any(axis=1).mean()), 4),
        "outcomes": {str(k): int(v) for k, v in outcomes.value_counts().items()},
    }


if __name__ == "__main__":
    main()
