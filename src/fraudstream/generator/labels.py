"""Labels as they arrive in reality: late, from two sources, and not for all fraud."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from fraudstream.generator.config import SCENARIOS, LabelConfig
from fraudstream.generator.draft import US_PER_DAY, US_PER_S
from fraudstream.schema import arrow_schema


def _delays_us(rng: np.random.Generator, median_days: float, sigma: float, n: int) -> np.ndarray:
    return (rng.lognormal(np.log(median_days), sigma, n) * US_PER_DAY).astype(np.int64)


def make_labels(
    rng: np.random.Generator,
    config: LabelConfig,
    keys: pa.Table,
    event_us: np.ndarray,
    scenario: np.ndarray,
) -> pa.Table:
    """Labels for one batch of transactions (aligned row by row), in label-time order.

    ``keys`` holds the transactions' ``transaction_id``, ``merchant_id`` and ``event_time``;
    every label carries all three, as a card programme's chargeback records do.

    Fraud (``scenario > 0``) is reported with probability ``1 - under_reporting_rate``;
    by an analyst (log-normal delay around ``analyst_median_days``) with probability
    ``analyst_share``, else as a chargeback. A share ``genuine_review_rate`` of
    genuine transactions is cleared by an analyst (``is_fraud=false``). Every
    ``label_time`` is at least ``min_hours`` and at most ``max_days`` after the
    transaction's event time.
    """
    n = len(event_us)
    is_fraud = scenario > 0
    reported = is_fraud & (rng.random(n) >= config.under_reporting_rate)
    reviewed = ~is_fraud & (rng.random(n) < config.genuine_review_rate)
    by_analyst = reviewed | (reported & (rng.random(n) < config.analyst_share))
    delay = np.where(
        by_analyst,
        _delays_us(rng, config.analyst_median_days, config.analyst_sigma, n),
        _delays_us(rng, config.chargeback_median_days, config.chargeback_sigma, n),
    )
    delay = np.maximum(delay, int(config.min_hours * 3600 * US_PER_S))
    if np.isfinite(config.max_days):
        delay = np.minimum(delay, int(config.max_days * US_PER_DAY))
    keep = np.flatnonzero(reported | reviewed)
    label_us = event_us[keep] + delay[keep]
    order = np.argsort(label_us, kind="stable")
    keep, label_us = keep[order], label_us[order]
    names = np.array([None, *SCENARIOS], dtype=object)
    rows = pa.array(keep)
    columns = {
        "transaction_id": keys["transaction_id"].take(rows),
        "merchant_id": keys["merchant_id"].take(rows),
        "event_time": keys["event_time"].take(rows),
        "is_fraud": pa.array(is_fraud[keep]),
        "fraud_scenario": pa.array(names[scenario[keep]], type=pa.string()),
        "label_time": pa.array(label_us, type=pa.timestamp("us", tz="UTC")),
        "source": pa.array(np.where(by_analyst[keep], "analyst", "chargeback"), type=pa.string()),
    }
    return pa.table(columns, schema=arrow_schema("label"))
