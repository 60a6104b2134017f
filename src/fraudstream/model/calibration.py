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

The rows' labels must be complete enough: at the label cutoff a recent fraud often has no
chargeback yet, counts as genuine, and a calibrator fitted on it scores too low exactly
where alerts are raised. Two measures, both in training (``training.calibrate``):
``calibration_rows`` keeps the validation rows at least the feature set's maturity delay
older than the cutoff, and the fit knows that a fraud among them is labelled only with the
estimated completeness of its age's labels (``platt``; the chain-ladder estimate the
threshold already uses), since slow chargebacks leave even those rows with a share of
their frauds unlabelled.
"""

from __future__ import annotations

import copy
import json
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy.optimize import minimize
from scipy.special import expit
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
    # the frauds the known ones stand for (each 1 / the label completeness at its age)
    estimated_frauds: float = 0.0
    # whether only rows past the maturity delay were used (else: every validation row)
    mature_only: bool = True
    # the latest event time of the rows used (ISO 8601, UTC), "" when unknown
    rows_until: str = ""
    # False when the fitted slope was not positive (the held-out scores did not rank the
    # frauds, as on a small or noisy training set): only the intercept is fitted, a = 1
    slope_fitted: bool = True

    def calibrated_threshold(self, threshold: float) -> float:
        """The calibrated score raising the same alerts as the uncalibrated ``threshold``
        (``sigmoid(a * logit(threshold) + b)``)."""
        margin = np.log(threshold / (1 - threshold))
        return float(1 / (1 + np.exp(-(self.a * margin + self.b))))

    def uncalibrated_threshold(self, threshold: float) -> float:
        """The uncalibrated score raising the same alerts as ``threshold`` on the calibrated
        scale (the inverse map: ``sigmoid((logit(threshold) - b) / a)``)."""
        margin = np.log(threshold / (1 - threshold))
        return float(1 / (1 + np.exp(-(margin - self.b) / self.a)))

    def params(self) -> dict[str, Any]:
        """The MLflow params of the calibration, ``calibration_*``."""
        return {f"calibration_{k}": v for k, v in asdict(self).items()}


IDENTITY = Calibration()


class UnrankedScoresError(ValueError):
    """The fitted slope is not positive: the map would reverse the ranking."""


def platt(
    margins: np.ndarray,
    is_fraud: np.ndarray,
    completeness: np.ndarray | None = None,
    slope: float | None = None,
) -> tuple[float, float]:
    """``(a, b)`` maximising the likelihood of ``sigmoid(a * margin + b)`` (Platt, 1999).

    ``completeness`` (one per row, default 1) is the estimated share of a fraud's labels
    known at the row's age: a row is then a *known* fraud with probability
    ``completeness * sigmoid(a * margin + b)`` (a fraud whose label is late counts as
    genuine; Elkan and Noto's known-label model, 2008), and that is the likelihood
    maximised, so the fitted map is the one of all frauds. Platt's smoothed targets
    (``(N+ + 1) / (N+ + 2)`` for a known fraud, ``1 / (N- + 2)`` for another row) keep the
    fit finite when the classes separate. ``slope`` fixes ``a`` and fits ``b`` alone. Raises
    ``UnrankedScoresError`` if the fitted slope is not positive: the map would reverse the
    ranking.
    """
    m = np.asarray(margins, dtype=np.float64)
    y = np.asarray(is_fraud).astype(bool)
    positives, negatives = int(y.sum()), int((~y).sum())
    if positives == 0 or negatives == 0:
        raise ValueError("calibration needs frauds and genuine rows")
    target = np.where(y, (positives + 1) / (positives + 2), 1 / (negatives + 2))
    c = np.ones(len(m)) if completeness is None else np.clip(completeness, 1e-6, 1.0)
    with np.errstate(divide="ignore"):
        log_missing = np.log1p(-c)  # log(1 - c): -inf where the labels are complete

    def loss(ab: np.ndarray) -> tuple[float, np.ndarray]:
        # log P(known fraud) = log c - softplus(-z);
        # log P(not) = log(1 - c * sigmoid(z)) = logaddexp(log(1 - c), -z) - softplus(-z)
        z = ab[0] * m + ab[1]
        up = np.logaddexp(0, -z)
        known = np.log(c) - up
        other = np.logaddexp(log_missing, -z) - up
        value = -np.sum(target * known + (1 - target) * other)
        s = expit(z)
        # d/dz of other: (1 - s) - 1 / (1 + (1 - c) e^z)
        dz = -(target * (1 - s) + (1 - target) * ((1 - s) - expit(-z - log_missing)))
        return float(value), np.array([np.sum(dz * m), np.sum(dz)])

    if slope is not None:

        def intercept_loss(b: np.ndarray) -> tuple[float, np.ndarray]:
            value, grad = loss(np.array([slope, b[0]]))
            return value, grad[1:]

        found = minimize(intercept_loss, np.array([0.0]), jac=True, method="L-BFGS-B")
        return float(slope), float(found.x[0])
    found = minimize(loss, np.array([1.0, 0.0]), jac=True, method="L-BFGS-B")
    a, b = float(found.x[0]), float(found.x[1])
    if not a > 0:
        raise UnrankedScoresError(
            f"the fitted calibration slope is {a:.4g}: the scores do not rank frauds"
        )
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
    margins: np.ndarray,
    is_fraud: np.ndarray,
    event_time: pd.Series,
    mature_only: bool = True,
    completeness: np.ndarray | None = None,
) -> Calibration:
    """Platt's ``(a, b)`` on out-of-sample ``margins`` of the calibration rows, with what it used.

    ``event_time`` is the rows' event time (for ``rows_until``); ``completeness`` as
    ``platt`` takes it. When the fitted slope is not positive, only the intercept is fitted
    (``a = 1``, ``slope_fitted`` False): still monotone, it corrects the level the class
    weights moved, and training goes on.
    """
    slope_fitted = True
    try:
        a, b = platt(margins, is_fraud, completeness)
    except UnrankedScoresError:
        a, b = platt(margins, is_fraud, completeness, slope=1.0)
        slope_fitted = False
    y = np.asarray(is_fraud).astype(bool)
    c = np.ones(len(y)) if completeness is None else np.asarray(completeness)
    return Calibration(
        a=a,
        b=b,
        rows=len(margins),
        frauds=int(y.sum()),
        estimated_frauds=round(float(np.sum(1 / c[y])), 1),
        mature_only=mature_only,
        rows_until=event_time.max().isoformat() if len(event_time) else "",
        slope_fitted=slope_fitted,
    )
