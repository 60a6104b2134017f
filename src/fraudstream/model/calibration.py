"""Calibrated scores: Platt scaling fitted on mature validation rows, written into the booster.

The trained model's score is not a probability: ``scale_pos_weight`` weighs the frauds up
to balance the classes, so a score of 0.5 means far less than a one-in-two chance of fraud.
Platt scaling maps the model's log-odds ``m`` to ``sigmoid(a * m + b)``, fitted by maximum
likelihood on rows the model has not been fitted on. It is strictly increasing (``a > 0``),
so every ranking metric (AUC, AP, CP@k) is unchanged.

The map is written into the booster itself (``calibrated``): every leaf value is multiplied
by ``a`` and the base margin becomes ``b`` (the model is fitted from a base score of 0.5, a
margin of 0), so the booster's own output is ``sigmoid(a * m + b)``. Every path that asks the
booster (the scorer's ``predict_proba``, the API's one-row C calls, SHAP reason codes, which
come out scaled by ``a`` and so keep their order) serves the calibrated score with no second
code path.

The rows must be old enough for their labels to be known: at the label cutoff a recent
fraud often has no chargeback yet, counts as genuine, and a calibrator fitted on it scores
too low exactly where alerts are raised. ``calibration_rows`` keeps the validation rows at
least the feature set's maturity delay older than the cutoff.
"""

from __future__ import annotations

import copy
import json
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy.optimize import minimize
from xgboost import XGBClassifier

# Below this many known frauds among the mature rows, every validation row is used (and
# ``mature_only`` records it): two parameters fitted on a handful of frauds are noise.
MIN_CALIBRATION_FRAUDS = 10


@dataclass(frozen=True)
class Calibration:
    """``sigmoid(a * margin + b)``, and the rows it was fitted on."""

    a: float = 1.0
    b: float = 0.0
    rows: int = 0
    frauds: int = 0
    # whether only rows past the maturity delay were used (else: every validation row)
    mature_only: bool = True
    # the latest event time of the rows used (ISO 8601, UTC), "" when unknown
    rows_until: str = ""

    def params(self) -> dict[str, Any]:
        """The MLflow params of the calibration, ``calibration_*``."""
        return {f"calibration_{k}": v for k, v in asdict(self).items()}


IDENTITY = Calibration()


def platt(margins: np.ndarray, is_fraud: np.ndarray) -> tuple[float, float]:
    """``(a, b)`` maximising the likelihood of ``sigmoid(a * margin + b)`` (Platt, 1999).

    Platt's smoothed targets (``(N+ + 1) / (N+ + 2)`` for a fraud, ``1 / (N- + 2)`` for a
    genuine row) keep the fit finite when the classes separate. Raises ``ValueError`` if the
    fitted slope is not positive: the map would reverse the ranking.
    """
    m = np.asarray(margins, dtype=np.float64)
    y = np.asarray(is_fraud).astype(bool)
    positives, negatives = int(y.sum()), int((~y).sum())
    if positives == 0 or negatives == 0:
        raise ValueError("calibration needs frauds and genuine rows")
    target = np.where(y, (positives + 1) / (positives + 2), 1 / (negatives + 2))

    def loss(ab: np.ndarray) -> tuple[float, np.ndarray]:
        z = ab[0] * m + ab[1]
        value = np.sum(target * np.logaddexp(0, -z) + (1 - target) * np.logaddexp(0, z))
        residual = 1 / (1 + np.exp(-z)) - target
        return float(value), np.array([np.sum(residual * m), np.sum(residual)])

    found = minimize(loss, np.array([1.0, 0.0]), jac=True, method="L-BFGS-B")
    a, b = float(found.x[0]), float(found.x[1])
    if not a > 0:
        raise ValueError(f"the fitted calibration slope is {a:.4g}: the scores do not rank frauds")
    return a, b


def margins_of(model: XGBClassifier, x: np.ndarray) -> np.ndarray:
    """The booster's log-odds (``output_margin``) for each row of ``x``."""
    margins: np.ndarray = np.asarray(model.predict(x, output_margin=True), dtype=np.float64)
    return margins


def calibrated(model: XGBClassifier, calibration: Calibration) -> XGBClassifier:
    """A copy of ``model`` whose output is ``sigmoid(a * margin + b)`` of the original.

    Leaf values (and the nodes' base weights, which the path attribution reads) are scaled
    by ``a``; the base score becomes ``sigmoid(a * base_margin + b)``. The model is left as it
    was. Only binary-logistic models are accepted.
    """
    raw = json.loads(bytes(model.get_booster().save_raw("json")))
    learner = raw["learner"]
    if learner["objective"]["name"] != "binary:logistic":
        raise ValueError(f"calibration needs binary:logistic, not {learner['objective']['name']}")
    a, b = calibration.a, calibration.b
    for tree in learner["gradient_booster"]["model"]["trees"]:
        leaf = np.asarray(tree["left_children"]) == -1
        tree["base_weights"] = [w * a for w in tree["base_weights"]]
        tree["split_conditions"] = [
            c * a if is_leaf else c
            for c, is_leaf in zip(tree["split_conditions"], leaf, strict=True)
        ]
    params = learner["learner_model_param"]
    base = float(str(params["base_score"]).strip("[]"))
    base_margin = np.log(base / (1 - base))
    params["base_score"] = f"[{1 / (1 + np.exp(-(a * base_margin + b))):.9E}]"
    out = copy.deepcopy(model)
    out.get_booster().load_model(bytearray(json.dumps(raw).encode()))
    return out


def calibration_rows(
    event_time: pd.Series,
    validation: np.ndarray,
    labels_known_at: pd.Timestamp | None,
    maturity: pd.Timedelta,
) -> np.ndarray:
    """The positions of ``validation`` whose event time is at least ``maturity`` before the
    label cutoff (all of them when the labels are complete, ``labels_known_at`` None)."""
    if labels_known_at is None:
        return validation
    mature = (event_time.iloc[validation] <= labels_known_at - maturity).to_numpy(dtype=bool)
    return np.asarray(validation[mature])


def fit_calibration(
    margins: np.ndarray, is_fraud: np.ndarray, event_time: pd.Series, mature_only: bool = True
) -> Calibration:
    """Platt's ``(a, b)`` on out-of-sample ``margins`` of the calibration rows, with what it used.

    ``event_time`` is the rows' event time (for ``rows_until``).
    """
    a, b = platt(margins, is_fraud)
    return Calibration(
        a=a,
        b=b,
        rows=len(margins),
        frauds=int(np.asarray(is_fraud).sum()),
        mature_only=mature_only,
        rows_until=event_time.max().isoformat() if len(event_time) else "",
    )
