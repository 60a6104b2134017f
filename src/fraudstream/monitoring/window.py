"""One monitoring window's metrics, pure: drift, alert rate and label-based quality.

Row shapes in:
- ``scored``: the window's scored transactions, one column per catalogue feature,
  ``score`` and ``is_alert`` (from ``transactions_with_score``);
- ``labelled``: matured scored transactions (``event_time``, ``card_id``, ``score``,
  ``is_fraud`` 0/1), where ``is_fraud`` holds the labels that had arrived when the window
  ended; a transaction without a label counts as genuine, as in training.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score

from fraudstream.features.catalogue import feature_names
from fraudstream.model.metrics import card_precision_at_k
from fraudstream.monitoring.drift import column_psi
from fraudstream.monitoring.profile import SCORE, Profile
from fraudstream.schema.jsonvalues import finite_float


@dataclass(frozen=True)
class Thresholds:
    """When a metric counts as breached (and triggers retraining).

    ``psi``: per feature and for the score (0.2, the usual "significant shift").
    ``max_alert_rate``: above this share of alerts; also breached when the rate exceeds
    ``alert_rate_factor`` times the reference's. ``min_average_precision``: below it, judged
    only with at least ``min_frauds`` labelled frauds (fewer make AP noise).
    ``min_rows``: a window with fewer scored rows records its metrics but breaches nothing.
    """

    psi: float = 0.2
    max_alert_rate: float = 0.05
    alert_rate_factor: float = 3.0
    min_average_precision: float = 0.2
    min_frauds: int = 10
    min_rows: int = 200


@dataclass(frozen=True)
class Metric:
    """One row of ``monitoring_metrics`` (without model and window)."""

    metric: str
    value: float | None
    threshold: float | None
    breached: bool
    details: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def drift_metrics(profile: Profile, scored: pd.DataFrame, limits: Thresholds) -> list[Metric]:
    """``psi_<feature>`` for every catalogue feature and ``psi_score``.

    Feature PSI is measured on the rows flagged ``in_feature_sample`` when the frame has
    that column (PostgreSQL keeps most rows' features in the lake only), the score's on
    every row."""
    sample = scored[scored["in_feature_sample"]] if "in_feature_sample" in scored else scored
    metrics = []
    for name in [*feature_names(), SCORE]:
        reference = profile.columns.get(name)
        if reference is None or name not in scored:
            continue
        rows = scored if name == SCORE else sample
        value = finite_float(column_psi(reference, rows[name].to_numpy(np.float64)))
        breached = len(rows) >= limits.min_rows and value is not None and value > limits.psi
        metrics.append(Metric(f"psi_{name}", value, limits.psi, breached, {"rows": len(rows)}))
    return metrics


def alert_metric(profile: Profile, scored: pd.DataFrame, limits: Thresholds) -> Metric:
    """Share of the window's transactions that raised an alert."""
    rate = float(scored["is_alert"].mean()) if len(scored) else None
    limit = limits.max_alert_rate
    if profile.alert_rate:
        limit = min(limit, max(profile.alert_rate * limits.alert_rate_factor, 1e-3))
    breached = rate is not None and len(scored) >= limits.min_rows and rate > limit
    details = {"rows": len(scored), "reference_alert_rate": profile.alert_rate}
    return Metric("alert_rate", rate, limit, breached, details)


def quality_metrics(labelled: pd.DataFrame, limits: Thresholds) -> list[Metric]:
    """Average Precision and Card Precision@100 on matured, labelled transactions."""
    frauds = int(labelled["is_fraud"].sum()) if len(labelled) else 0
    details = {"rows": len(labelled), "frauds": frauds}
    both = 0 < frauds < len(labelled)
    ap = float(average_precision_score(labelled["is_fraud"], labelled["score"])) if both else None
    cp = card_precision_at_k(labelled, labelled["score"].to_numpy(), 100) if both else None
    judged = ap is not None and frauds >= limits.min_frauds
    return [
        Metric(
            "average_precision",
            ap,
            limits.min_average_precision,
            judged and ap is not None and ap < limits.min_average_precision,
            details,
        ),
        Metric(
            "card_precision_at_100", None if cp is None else finite_float(cp), None, False, details
        ),
        Metric("labelled_rows", float(len(labelled)), None, False, details),
    ]


def window_metrics(
    profile: Profile, scored: pd.DataFrame, labelled: pd.DataFrame, limits: Thresholds
) -> list[Metric]:
    """Every metric of one window, in a stable order."""
    rows = Metric("scored_rows", float(len(scored)), float(limits.min_rows), False, {})
    return [
        rows,
        *drift_metrics(profile, scored, limits),
        alert_metric(profile, scored, limits),
        *quality_metrics(labelled, limits),
    ]
