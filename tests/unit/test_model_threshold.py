"""The threshold rule's parts: label completeness from late labels, the weighted F2 alert rate."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from fraudstream.model.metrics import at_threshold
from fraudstream.model.threshold import (
    DAY,
    MIN_COMPLETENESS,
    MIN_KNOWN_FRAUDS,
    completeness_at,
    f2_alert_rate,
    folds_to_use,
    fraud_weights,
    label_completeness,
    threshold_at_alert_rate,
)

START = pd.Timestamp("2026-05-01T00:00:00Z")


def delayed_frauds(
    n: int, days: float, median_delay: float, seed: int = 0
) -> tuple[pd.Series, pd.Series, np.ndarray, pd.Timestamp, np.ndarray]:
    """Frauds spread over ``days``, each labelled after a log-normal delay (median in days).

    Returns event times, label times as known at the cutoff (NaT when still to come),
    is_fraud as known then, the cutoff (the end of the data) and the true delays.
    """
    rng = np.random.default_rng(seed)
    event = START + pd.to_timedelta(np.sort(rng.uniform(0, days, n)), unit="D")
    delay = rng.lognormal(np.log(median_delay), 0.5, n)
    cutoff = START + days * DAY
    label = event + pd.to_timedelta(delay, unit="D")
    known = np.asarray(label <= cutoff)
    label_time = pd.Series(label).where(known)
    return pd.Series(event), label_time, known.astype(int), cutoff, delay


def test_label_completeness_recovers_the_delay_distribution() -> None:
    event, label_time, known, cutoff, delay = delayed_frauds(20_000, days=60, median_delay=8)
    curve = label_completeness(event, label_time, known, cutoff)
    horizon = len(curve) - 1
    assert horizon == 59
    assert curve[0] == 0.0
    assert curve[-1] == 1.0
    assert np.all(np.diff(curve) >= 0)  # completeness never falls with age
    within_horizon = delay[delay <= horizon]
    for age in (3, 6, 8, 12, 20):
        true = np.mean(within_horizon <= age)
        assert completeness_at(curve, np.array([age]))[0] == pytest.approx(true, abs=0.03)


def test_fraud_weights_count_a_young_fraud_for_the_ones_still_unlabelled() -> None:
    curve = np.array([0.0, 0.1, 0.5, 1.0])
    y = np.array([1, 1, 1, 0, 1])
    ages = np.array([2.0, 3.0, 1.5, 2.0, 1.0])
    weights = fraud_weights(y, ages, curve)
    np.testing.assert_allclose(weights, [2.0, 1.0, 1 / 0.3, 0.0, 1 / MIN_COMPLETENESS])
    np.testing.assert_allclose(fraud_weights(y, ages, None), y)


def scored_fold(n: int = 200_000, rate: float = 0.01, seed: int = 1) -> tuple[np.ndarray, ...]:
    """Scores where frauds rank higher with overlap; all labels, then 40 % of them known."""
    rng = np.random.default_rng(seed)
    y = (rng.uniform(size=n) < rate).astype(int)
    scores = rng.normal(size=n) + 4.0 * y
    known = y * (rng.uniform(size=n) < 0.4)
    return scores, y, known


def test_a_fold_with_missing_labels_does_not_drag_the_alert_rate_down() -> None:
    scores, y, known = scored_fold()

    def f2_at(rate: float) -> float:
        return at_threshold(y, scores, threshold_at_alert_rate(scores, rate))["f2"]

    complete, _ = f2_alert_rate([scores], [y.astype(float)])
    naive, _ = f2_alert_rate([scores], [known.astype(float)])
    weighted, f2 = f2_alert_rate([scores], [known / 0.4])
    # Counting every unlabelled fraud as a false alarm asks for fewer alerts...
    assert naive < 0.85 * complete
    # ... weighting the known frauds by the labels still to come gives the right rate back,
    assert weighted == pytest.approx(complete, rel=0.15)
    assert f2 == pytest.approx(f2_at(complete), abs=0.03)  # and estimates its F2

    # Judged on every label, the weighted choice is as good as the complete-label one.
    assert f2_at(weighted) >= f2_at(complete) - 0.01
    assert f2_at(naive) < f2_at(weighted) - 0.01
    assert 0.0 < f2 <= 1.0
    with pytest.raises(ValueError, match="no known fraud"):
        f2_alert_rate([scores], [np.zeros(len(scores))])


def test_the_alert_rate_follows_the_fraud_rate() -> None:
    low, _ = f2_alert_rate(*_weighted(scored_fold(rate=0.005)))
    high, _ = f2_alert_rate(*_weighted(scored_fold(rate=0.02)))
    assert high > 2 * low
    both, _ = f2_alert_rate(
        *(
            a + b
            for a, b in zip(
                _weighted(scored_fold(rate=0.005)), _weighted(scored_fold(rate=0.02)), strict=True
            )
        )
    )
    assert low < both < high  # two folds together: a rate between theirs


def _weighted(fold: tuple[np.ndarray, ...]) -> tuple[list[np.ndarray], list[np.ndarray]]:
    scores, y, _ = fold
    return [scores], [y.astype(float)]


def test_older_folds_join_only_while_the_recent_ones_hold_too_few_frauds() -> None:
    assert folds_to_use([MIN_KNOWN_FRAUDS, 0, 50]) == 1
    assert folds_to_use([2, MIN_KNOWN_FRAUDS - 2, 50]) == 2
    assert folds_to_use([1, 1, 1]) == 3  # all there is
    with pytest.raises(ValueError, match="no validation fold holds a known fraud"):
        folds_to_use([0, 0, 0])


def test_threshold_at_alert_rate_gives_that_rate() -> None:
    scores = np.random.default_rng(2).uniform(size=10_000)
    threshold = threshold_at_alert_rate(scores, 0.0123)
    assert np.mean(scores >= threshold) == pytest.approx(0.0123)
    assert np.sum(scores >= threshold_at_alert_rate(scores, 0.0)) == 1  # at least one alert
