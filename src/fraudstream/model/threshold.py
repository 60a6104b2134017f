"""The stored decision threshold: the F2-optimal alert rate of the most recent fold, with
the frauds whose labels have not arrived yet accounted for.

Three facts shape the rule (measured on the histories of docs/model.md).

* **The fraud rate moves.** Four-day blocks of one generated history range from 0.14 %
  to 0.95 % fraud, and the F2-optimal alert rate follows the fraud rate; the most
  recent validation fold is the best guess of the coming days, so it sets the rate
  (pooling all folds averaged older, calmer periods in and alerted too little). Only
  when it holds fewer than ``MIN_KNOWN_FRAUDS`` known frauds do older folds join
  (``folds_to_use``): a rate chosen on two frauds is noise.
* **Labels arrive late.** At the label cutoff (the test start) a fraud of the most
  recent fold is 7 to 11 days old and most chargebacks for it are still to come (43 to
  48 % of its eventual fraud labels were known). Scored against those labels, every
  alert on a not-yet-labelled fraud counts as a false positive, so the F2-optimal rate
  came out at about half the right one. Recall is unbiased as long as a fraud's label
  delay does not depend on its score (the known frauds are then a random share of
  all frauds), and precision is biased by the completeness alone; so each known fraud
  counts ``1 / completeness`` times (inverse-probability weighting), the completeness
  at its age being estimated from the labels themselves (``label_completeness``: the
  chain-ladder method of insurance claims reserving).
* **Fold models and the refit score on different scales** (genuine rows sampled in the
  search, all rows in the refit; at a score of 0.5 the fold model alerted on 2.3
  times as many rows as a model fitted on the fold's rows without sampling), so an
  absolute score does not carry over. The rate does: the refitted model's threshold is
  the score giving that rate on the same validation rows, and is stored as a score, so
  the alert rate still rises and falls with the fraud in the scored traffic.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from fraudstream.model.metrics import F_BETA

DAY = pd.Timedelta(days=1)
# A fraud whose estimated completeness is lower than this counts at most 1 / this
# times: very young rows would otherwise weigh on the choice with a handful of labels.
MIN_COMPLETENESS = 0.2
# One fold decides the rate when it holds this many known frauds; else older folds join.
MIN_KNOWN_FRAUDS = 10
# Candidate alert rates: 1 in 10,000 rows up to one row in five, log-spaced.
ALERT_RATES = np.geomspace(1e-4, 0.2, 600)


def label_completeness(
    event_time: pd.Series, label_time: pd.Series, is_fraud: np.ndarray, known_at: pd.Timestamp
) -> np.ndarray:
    """Estimated share of a fraud's eventual labels known ``d`` days after it, d = 0, 1, ... H.

    Chain ladder on the frauds labelled by ``known_at``: a fraud at least ``d + 1``
    days old at the cutoff shows whether its label arrived within ``d`` or within
    ``d + 1`` days, so the development ratio ``r_d = #(delay <= d) / #(delay <= d + 1)``
    is measured on those frauds alone; the curve is the product of the ratios from
    ``d`` to the horizon ``H`` (the age of the oldest row, in whole days), where it is
    1 by construction. A label taking longer than the oldest row's age is never seen,
    so the curve is the completeness relative to the labels arriving within ``H`` days.
    Row shape: the training rows with ``event_time``, ``label_time`` (of the verdict in
    force, NaT when unlabelled) and ``is_fraud`` as known at ``known_at``.
    """
    age = ((known_at - event_time) / DAY).to_numpy(dtype=np.float64)
    horizon = max(1, int(np.floor(age.max())))
    fraud = np.asarray(is_fraud).astype(bool) & label_time.notna().to_numpy()
    delay = ((label_time - event_time) / DAY).to_numpy(dtype=np.float64)[fraud]
    fraud_age = age[fraud]
    ratios = np.ones(horizon)
    for d in range(horizon):
        seen = fraud_age >= d + 1
        within_next = np.sum(delay[seen] <= d + 1)
        if within_next:
            ratios[d] = np.sum(delay[seen] <= d) / within_next
    # curve[d] = prod(ratios[d:]), curve[horizon] = 1
    return np.append(np.cumprod(ratios[::-1])[::-1], 1.0)


def completeness_at(curve: np.ndarray, age_days: np.ndarray) -> np.ndarray:
    """The curve of ``label_completeness`` at fractional ages (linear between whole days)."""
    return np.asarray(np.interp(age_days, np.arange(len(curve)), curve), dtype=np.float64)


def row_completeness(age_days: np.ndarray, curve: np.ndarray | None) -> np.ndarray:
    """The estimated share of a fraud's labels known at each row's age, at least
    ``MIN_COMPLETENESS``; 1 without a curve (labels taken as complete)."""
    if curve is None:
        return np.ones(len(age_days))
    completeness: np.ndarray = np.maximum(completeness_at(curve, age_days), MIN_COMPLETENESS)
    return completeness


def fraud_weights(
    is_fraud: np.ndarray, age_days: np.ndarray, curve: np.ndarray | None
) -> np.ndarray:
    """How many frauds each known fraud stands for: ``1 / completeness`` of its age, else 0.

    Without a curve (labels taken as complete) every known fraud counts once.
    """
    fraud = np.asarray(is_fraud).astype(bool)
    return np.where(fraud, 1.0 / row_completeness(age_days, curve), 0.0)


def folds_to_use(known_frauds: Sequence[int]) -> int:
    """How many of the most recent folds choose the rate: the fewest holding
    ``MIN_KNOWN_FRAUDS`` known frauds together, else all of them.

    One fold decides when it can (it reflects the current fraud rate best); a fold
    with a couple of known frauds would make the rate noise, so older folds are added
    until the evidence is enough. ``known_frauds`` is per fold, most recent first.
    """
    if sum(known_frauds) == 0:
        raise ValueError(
            "no validation fold holds a known fraud: no threshold can be chosen (train on "
            "more days, or wait for labels to arrive)"
        )
    total = np.cumsum(known_frauds)
    enough = np.flatnonzero(total >= MIN_KNOWN_FRAUDS)
    return int(enough[0]) + 1 if len(enough) else len(known_frauds)


def f2_alert_rate(
    fold_scores: Sequence[np.ndarray], fold_weights: Sequence[np.ndarray]
) -> tuple[float, float]:
    """The alert rate maximising F2 on the folds' out-of-sample scores, and that estimated F2.

    At a rate ``q`` every fold alerts on its own top ``q`` of rows (a fold model's
    scale does not matter); true positives and frauds are sums of ``fold_weights``
    (``fraud_weights``: a known fraud also stands for the frauds of its age not
    labelled yet), alerts are counted as they are, and precision is capped at 1. The
    rate, not the score, is what carries over to the refitted model.
    """
    alerts = np.zeros(len(ALERT_RATES))
    hits = np.zeros(len(ALERT_RATES))
    frauds, rows = 0.0, 0
    for scores, weights in zip(fold_scores, fold_weights, strict=True):
        caught = np.cumsum(weights[np.argsort(-scores, kind="stable")])
        top = np.clip(np.round(ALERT_RATES * len(scores)).astype(int), 1, len(scores))
        alerts += top
        hits += caught[top - 1]
        frauds += float(weights.sum())
        rows += len(scores)
    if frauds <= 0:
        raise ValueError("the validation folds hold no known fraud: no threshold can be chosen")
    precision = np.minimum(hits / alerts, 1.0)
    recall = hits / frauds
    denom = F_BETA**2 * precision + recall
    numer = (1 + F_BETA**2) * precision * recall
    f2 = np.divide(numer, denom, out=np.zeros_like(denom), where=denom > 0)
    best = int(np.argmax(f2))
    return float(alerts[best] / rows), float(f2[best])


def threshold_at_alert_rate(scores: np.ndarray, alert_rate: float) -> float:
    """The score above which ``alert_rate`` of ``scores`` lie (at least one alert).

    Used to carry the chosen alert rate over to the refitted model: its scores on the
    folds' validation rows give the threshold stored with it.
    """
    alerts = max(1, round(alert_rate * len(scores)))
    return float(np.sort(scores)[::-1][min(alerts, len(scores)) - 1])
