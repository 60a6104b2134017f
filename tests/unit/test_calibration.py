"""Platt calibration written into the booster: the map it claims, ranking untouched, ECE better."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xgboost
from sklearn.metrics import average_precision_score, roc_auc_score
from xgboost import XGBClassifier

from fraudstream.model.calibration import (
    Calibration,
    calibrated,
    calibration_rows,
    fit_calibration,
    margins_of,
    platt,
)
from fraudstream.model.metrics import calibration_errors, expected_calibration_error

START = pd.Timestamp("2026-05-01T00:00:00Z")


def _rows(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """About 3 % fraud driven by the first two columns; NaN in the third."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 3))
    x[rng.random(n) < 0.2, 2] = np.nan
    logit = -4.5 + 1.8 * x[:, 0] + 1.2 * x[:, 1]
    return x, (rng.uniform(size=n) < 1 / (1 + np.exp(-logit))).astype(int)


def _weighted_model(x: np.ndarray, y: np.ndarray) -> XGBClassifier:
    """Frauds weighed up to balance the classes, as training does: scores far too high."""
    weight = float((y == 0).sum() / y.sum())
    model = XGBClassifier(
        n_estimators=60, max_depth=4, base_score=0.5, scale_pos_weight=weight, random_state=0
    )
    return model.fit(x, y)


def test_platt_recovers_a_known_map() -> None:
    rng = np.random.default_rng(1)
    margins = rng.normal(0, 3, 200_000)
    y = (rng.uniform(size=len(margins)) < 1 / (1 + np.exp(-(0.6 * margins - 2.5)))).astype(int)
    a, b = platt(margins, y)
    assert a == pytest.approx(0.6, abs=0.02)
    assert b == pytest.approx(-2.5, abs=0.05)


def test_the_label_completeness_in_the_fit_undoes_the_missing_labels() -> None:
    # Only 40 % of the frauds are labelled yet (the others count as genuine): taken as
    # complete, Platt's map scores too low; told the completeness, the fit gets it back.
    rng = np.random.default_rng(2)
    margins = rng.normal(0, 3, 400_000)
    truth = rng.uniform(size=len(margins)) < 1 / (1 + np.exp(-(0.6 * margins - 4.0)))
    known = (truth & (rng.uniform(size=len(margins)) < 0.4)).astype(int)
    a, b = platt(margins, known)
    assert b < -4.5  # too low: late frauds taken for genuine rows
    a, b = platt(margins, known, np.full(len(margins), 0.4))
    assert a == pytest.approx(0.6, abs=0.03)
    assert b == pytest.approx(-4.0, abs=0.1)


def test_the_calibrated_booster_outputs_the_map_and_keeps_every_ranking_metric() -> None:
    x, y = _rows(20_000, seed=2)
    model = _weighted_model(x, y)
    x_new, y_new = _rows(20_000, seed=3)
    raw_margin = margins_of(model, x_new)
    calibration = Calibration(a=0.83, b=-3.1)
    cal = calibrated(model, calibration)
    got = cal.predict_proba(x_new)[:, 1]
    # The booster's own output is sigmoid(a * margin + b) (float32 leaves: 1e-5 in margin).
    np.testing.assert_allclose(margins_of(cal, x_new), 0.83 * raw_margin - 3.1, atol=1e-5)
    np.testing.assert_allclose(got, 1 / (1 + np.exp(-(0.83 * raw_margin - 3.1))), rtol=1e-5)
    raw = model.predict_proba(x_new)[:, 1]
    # Ranking: XGBoost sums leaves in float32, so rows whose margins differ by a float32
    # rounding can swap or tie; no other pair may. AUC and AP then agree to 1e-6 (the
    # uncalibrated probabilities also tie near 1, which the calibrated ones do not).
    order = np.argsort(raw_margin, kind="stable")
    swapped = np.flatnonzero(np.diff(got[order]) < 0)
    gap = np.abs(raw_margin[order][swapped + 1] - raw_margin[order][swapped])
    assert np.all(gap <= 1e-5 * np.maximum(1.0, np.abs(raw_margin[order][swapped])))
    for metric in (roc_auc_score, average_precision_score):
        assert metric(y_new, got) == pytest.approx(metric(y_new, raw_margin), abs=1e-6)
        assert metric(y_new, got) == pytest.approx(metric(y_new, raw), abs=1e-6)
    # the model handed in is left as it was
    np.testing.assert_array_equal(model.predict_proba(x_new)[:, 1], raw)


def test_reason_codes_come_out_scaled_by_the_slope() -> None:
    x, y = _rows(5000, seed=4)
    model = _weighted_model(x, y)
    cal = calibrated(model, Calibration(a=0.5, b=-2.0))
    matrix = xgboost.DMatrix(x[:200], missing=np.nan)
    for approx in (False, True):
        before = model.get_booster().predict(matrix, pred_contribs=True, approx_contribs=approx)
        after = cal.get_booster().predict(matrix, pred_contribs=True, approx_contribs=approx)
        np.testing.assert_allclose(after[:, :-1], 0.5 * before[:, :-1], atol=1e-5)


def test_platt_on_held_out_rows_brings_the_calibration_error_down() -> None:
    x, y = _rows(20_000, seed=5)
    model = _weighted_model(x, y)
    x_cal, y_cal = _rows(20_000, seed=6)
    a, b = platt(margins_of(model, x_cal), y_cal)
    cal = calibrated(model, Calibration(a=a, b=b))
    x_test, y_test = _rows(40_000, seed=7)
    before = model.predict_proba(x_test)[:, 1]
    after = cal.predict_proba(x_test)[:, 1]
    assert expected_calibration_error(y_test, before) > 0.1
    assert expected_calibration_error(y_test, after) < 0.01
    # the same alerts at the equivalent thresholds, and a better-calibrated alert band
    threshold = float(np.quantile(after, 0.98))
    calibration = Calibration(a=a, b=b)
    raw_threshold = calibration.uncalibrated_threshold(threshold)
    assert calibration.calibrated_threshold(raw_threshold) == pytest.approx(threshold)
    agree = (before >= raw_threshold) == (after >= threshold)
    assert agree.mean() > 0.9999  # all but float32 near-ties at the threshold
    band_before = calibration_errors(y_test, before, raw_threshold)["ece_alert_band"]
    band_after = calibration_errors(y_test, after, threshold)["ece_alert_band"]
    assert band_after < band_before


def test_the_expected_calibration_error_of_known_bins() -> None:
    y = np.array([0, 0, 0, 1, 1, 0, 1, 1])
    scores = np.array([0.05, 0.05, 0.05, 0.05, 0.95, 0.95, 0.95, 0.95])
    # two bins of four rows: |0.25 - 0.05| and |0.75 - 0.95|
    assert expected_calibration_error(y, scores) == pytest.approx(0.2)
    assert np.isnan(expected_calibration_error(y[:0], scores[:0]))


def test_calibration_rows_are_the_validation_rows_past_the_maturity_delay() -> None:
    times = pd.Series(START + pd.to_timedelta(np.arange(30), unit="D"))
    validation = np.arange(10, 30)
    cutoff = START + pd.Timedelta(days=31)
    rows = calibration_rows(times, validation, cutoff, pd.Timedelta(days=14))
    assert rows.tolist() == list(range(10, 18))
    assert calibration_rows(times, validation, None, pd.Timedelta(days=14)) is validation


def test_a_reversing_map_is_refused() -> None:
    margins = np.linspace(-3, 3, 100)
    with pytest.raises(ValueError, match="slope"):
        platt(margins, (margins < -1).astype(int))


def test_scores_that_do_not_rank_the_frauds_get_only_an_intercept() -> None:
    # A small or noisy training set: the held-out margins rank the frauds backwards. The map
    # keeps the slope at 1 (ranking untouched) and moves the level to the observed fraud rate.
    margins = np.linspace(-3, 3, 400)
    frauds = (margins < -2.4).astype(int)
    times = pd.Series(pd.date_range(START, periods=len(margins), freq="h"))
    cal = fit_calibration(margins, frauds, times)
    assert (cal.a, cal.slope_fitted) == (1.0, False)
    calibrated_scores = 1 / (1 + np.exp(-(cal.a * margins + cal.b)))
    assert calibrated_scores.mean() == pytest.approx(frauds.mean(), rel=0.05)
    assert fit_calibration(-margins, frauds, times).slope_fitted is True
