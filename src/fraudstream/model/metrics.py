"""Fraud evaluation as in the fraud-detection literature.

Threshold-free: AUC ROC, Average Precision, Card Precision@k per day.
At a threshold: F2, precision, recall, alert rate, recall per fraud scenario.
Calibration: expected calibration error, overall and within the alerted band.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score, precision_recall_curve, roc_auc_score

F_BETA = 2.0
# Equal-width score bins of the expected calibration error (the usual definition).
ECE_BINS = 10


def card_precision_at_k(frame: pd.DataFrame, scores: np.ndarray, k: int = 100) -> float:
    """Mean over days of the share of compromised cards among the day's top-k cards.

    A card's daily score is its highest transaction score that day and it counts as
    compromised when any of its transactions that day is fraud. Cards found
    compromised on an earlier day are removed from later days (they would be
    blocked). ``frame`` needs ``event_time``, ``card_id`` and ``is_fraud``.
    """
    day = frame["event_time"].dt.floor("D").to_numpy()
    cards = pd.DataFrame(
        {
            "day": day,
            "card_id": frame["card_id"].to_numpy(),
            "score": scores,
            "fraud": frame["is_fraud"].to_numpy(),
        }
    )
    daily = cards.groupby(["day", "card_id"], sort=True).agg(
        score=("score", "max"), fraud=("fraud", "max")
    )
    detected: set[str] = set()
    precisions = []
    for _, per_day in daily.groupby(level="day", sort=True):
        per_day = per_day.droplevel("day")
        per_day = per_day[~per_day.index.isin(detected)]
        top = per_day.nlargest(k, "score")
        precisions.append(float(top["fraud"].sum()) / k)
        detected |= set(per_day.index[per_day["fraud"] > 0])
    return float(np.mean(precisions)) if precisions else float("nan")


def f2_threshold(y_true: np.ndarray, scores: np.ndarray) -> tuple[float, float]:
    """The score threshold maximising F2 (recall weighs 4x precision), and that F2."""
    precision, recall, thresholds = precision_recall_curve(y_true, scores)
    p, r = precision[:-1], recall[:-1]
    denom = F_BETA**2 * p + r
    f2 = np.where(denom > 0, (1 + F_BETA**2) * p * r / np.where(denom > 0, denom, 1), 0.0)
    best = int(np.argmax(f2))
    return float(thresholds[best]), float(f2[best])


def at_threshold(y_true: np.ndarray, scores: np.ndarray, threshold: float) -> dict[str, float]:
    """Precision, recall, F2 and alert rate of ``score >= threshold``."""
    alert = scores >= threshold
    tp = float(np.sum(alert & (y_true == 1)))
    precision = tp / alert.sum() if alert.sum() else 0.0
    recall = tp / y_true.sum() if y_true.sum() else 0.0
    denom = F_BETA**2 * precision + recall
    f2 = (1 + F_BETA**2) * precision * recall / denom if denom else 0.0
    return {"precision": precision, "recall": recall, "f2": f2, "alert_rate": float(alert.mean())}


def recall_per_scenario(
    scenarios: pd.Series, y_true: np.ndarray, scores: np.ndarray, threshold: float
) -> dict[str, float]:
    """Recall at the threshold for each known fraud scenario (frauds only)."""
    out = {}
    frauds = pd.DataFrame({"scenario": scenarios.to_numpy(), "hit": scores >= threshold})[
        y_true == 1
    ]
    for scenario, hits in frauds.dropna().groupby("scenario")["hit"]:
        out[str(scenario)] = float(hits.mean())
    return out


def expected_calibration_error(
    y_true: np.ndarray, scores: np.ndarray, bins: int = ECE_BINS
) -> float:
    """Mean over equal-width score bins of |fraud rate - mean score|, weighted by the bin's rows.

    Over all rows it is dominated by the many scores near zero; on the alerted rows alone
    (``at_threshold``'s ``ece_alert_band``) it says whether an alert's score can be read
    as its chance of fraud. NaN without rows.
    """
    y = np.asarray(y_true, dtype=np.float64)
    s = np.asarray(scores, dtype=np.float64)
    if len(s) == 0:
        return float("nan")
    which = np.clip((s * bins).astype(int), 0, bins - 1)
    rows = np.bincount(which, minlength=bins)
    gap = np.abs(np.bincount(which, y, bins) - np.bincount(which, s, bins))
    return float(gap.sum() / rows.sum())


def calibration_errors(
    y_true: np.ndarray, scores: np.ndarray, threshold: float
) -> dict[str, float]:
    """The expected calibration error over every row and over the alerted rows
    (score >= threshold)."""
    alert = scores >= threshold
    return {
        "ece": expected_calibration_error(y_true, scores),
        "ece_alert_band": expected_calibration_error(y_true[alert], scores[alert]),
    }


def evaluate(frame: pd.DataFrame, scores: np.ndarray, threshold: float) -> dict[str, Any]:
    """Every metric of the report for one model on one labelled set of feature rows."""
    y = frame["is_fraud"].to_numpy().astype(int)
    both = 0 < y.sum() < len(y)
    report: dict[str, Any] = {
        "rows": len(y),
        "frauds": int(y.sum()),
        "auc_roc": float(roc_auc_score(y, scores)) if both else float("nan"),
        "average_precision": float(average_precision_score(y, scores)) if both else float("nan"),
        "card_precision_at_100": card_precision_at_k(frame, scores, 100),
        "threshold": threshold,
        **at_threshold(y, scores, threshold),
        **calibration_errors(y, scores, threshold),
    }
    if "fraud_scenario" in frame:
        report["recall_per_scenario"] = recall_per_scenario(
            frame["fraud_scenario"], y, scores, threshold
        )
    return report
