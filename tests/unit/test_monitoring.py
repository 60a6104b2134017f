"""Monitoring's pure core: PSI on known distributions, profiles, one window's metrics."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from fraudstream.features.catalogue import feature_names
from fraudstream.monitoring.drift import EPSILON, column_psi, psi
from fraudstream.monitoring.profile import (
    SCORE,
    Profile,
    ProfileError,
    bin_shares,
    build_profile,
    profile_column,
)
from fraudstream.monitoring.window import Thresholds, window_metrics


def test_psi_of_known_shares() -> None:
    # (0.9-0.5) ln(0.9/0.5) + (0.1-0.5) ln(0.1/0.5) = 0.4 ln 1.8 + 0.4 ln 5
    assert psi([0.5, 0.5], [0.9, 0.1]) == pytest.approx(0.4 * math.log(1.8) + 0.4 * math.log(5))
    assert psi([0.25] * 4, [0.25] * 4) == 0.0


def test_psi_is_symmetric_and_positive() -> None:
    a, b = [0.1, 0.2, 0.7], [0.3, 0.3, 0.4]
    assert psi(a, b) == pytest.approx(psi(b, a))
    assert psi(a, b) > 0


def test_empty_bins_give_a_finite_large_contribution() -> None:
    value = psi([0.5, 0.5, 0.0], [0.5, 0.0, 0.5])
    assert math.isfinite(value)
    expected = 2 * (0.5 - EPSILON) * math.log(0.5 / EPSILON)
    assert value == pytest.approx(expected)
    assert value > 5


def test_psi_refuses_different_bins() -> None:
    with pytest.raises(ValueError, match="differ in length"):
        psi([0.5, 0.5], [1.0])


def test_bin_shares_count_edges_to_the_left_and_missing_apart() -> None:
    shares, missing = bin_shares(np.array([0.0, 1.0, 1.5, 2.0, np.nan]), (1.0, 2.0))
    assert shares.tolist() == [0.4, 0.4, 0.0]
    assert missing == pytest.approx(0.2)
    assert bin_shares(np.array([]), (1.0,))[0].tolist() == [0.0, 0.0]


def test_quantile_bins_are_deduplicated_for_repeated_values() -> None:
    counts = np.array([1.0] * 80 + [2.0] * 15 + [3.0] * 5)
    col = profile_column(counts, bins=10)
    assert col.edges == (1.0, 2.0)
    assert col.proportions == pytest.approx((0.8, 0.15, 0.05))
    assert col.missing == 0.0


def test_same_distribution_is_stable_and_a_shift_is_not() -> None:
    rng = np.random.default_rng(1)
    reference = profile_column(rng.normal(0, 1, 50_000))
    assert column_psi(reference, rng.normal(0, 1, 20_000)) < 0.01
    assert column_psi(reference, rng.normal(0.5, 1, 20_000)) > 0.2
    assert column_psi(reference, rng.normal(0, 2, 20_000)) > 0.2
    assert math.isnan(column_psi(reference, np.array([])))


def test_more_missing_values_is_drift() -> None:
    rng = np.random.default_rng(2)
    reference = profile_column(rng.normal(0, 1, 10_000))
    values = rng.normal(0, 1, 10_000)
    values[: len(values) // 2] = np.nan
    assert column_psi(reference, values) > 1.0


def _matrix(rng: np.random.Generator, n: int, shift: float = 0.0) -> pd.DataFrame:
    names = feature_names()
    data = rng.gamma(2.0, 10.0, (n, len(names))) * (1 + shift)
    return pd.DataFrame(data, columns=names)


def test_profile_round_trips_through_json() -> None:
    rng = np.random.default_rng(3)
    frame = _matrix(rng, 2000)
    scores = rng.beta(1, 30, 2000)
    profile = build_profile(frame, scores, threshold=0.1)
    again = Profile.from_dict(json.loads(profile.to_json()))
    assert again == profile
    assert set(again.columns) == {*feature_names(), SCORE}
    assert again.alert_rate == pytest.approx(float(np.mean(scores >= 0.1)))
    for col in again.columns.values():
        assert sum(col.proportions) + col.missing == pytest.approx(1.0)


def test_profile_errors_are_named() -> None:
    with pytest.raises(ProfileError, match="lacks catalogue columns"):
        build_profile(pd.DataFrame({"amount": [1.0]}))
    with pytest.raises(ProfileError, match="format"):
        Profile.from_dict({"format_version": 99})


def _window(rng: np.random.Generator, n: int, shift: float, alert_share: float) -> pd.DataFrame:
    frame = _matrix(rng, n, shift)
    frame[SCORE] = rng.beta(1, 30 / (1 + 5 * shift), n)
    frame["is_alert"] = rng.random(n) < alert_share
    return frame


def _labelled(rng: np.random.Generator, n: int, informative: bool) -> pd.DataFrame:
    fraud = (rng.random(n) < 0.05).astype(np.int8)
    score = rng.random(n) + (fraud if informative else 0)
    times = pd.Timestamp("2026-01-01", tz="UTC") + pd.to_timedelta(rng.random(n) * 7, unit="D")
    cards = [f"c{i % 300}" for i in range(n)]
    return pd.DataFrame({"event_time": times, "card_id": cards, "score": score, "is_fraud": fraud})


def test_window_without_shift_breaches_nothing() -> None:
    rng = np.random.default_rng(4)
    reference = _window(rng, 20_000, 0.0, 0.01)
    profile = build_profile(reference, reference[SCORE].to_numpy(), threshold=0.1)
    metrics = window_metrics(
        profile, _window(rng, 5000, 0.0, 0.01), _labelled(rng, 5000, True), Thresholds()
    )
    by_name = {m.metric: m for m in metrics}
    assert not [m.metric for m in metrics if m.breached]
    assert by_name["average_precision"].value is not None
    assert by_name["average_precision"].value > 0.5
    assert by_name["card_precision_at_100"].value is not None
    assert by_name["scored_rows"].value == 5000


def test_shifted_window_breaches_psi_alert_rate_and_quality() -> None:
    rng = np.random.default_rng(5)
    reference = _window(rng, 20_000, 0.0, 0.01)
    profile = build_profile(reference, reference[SCORE].to_numpy(), threshold=0.1)
    metrics = window_metrics(
        profile, _window(rng, 5000, 0.6, 0.2), _labelled(rng, 5000, False), Thresholds()
    )
    breached = {m.metric for m in metrics if m.breached}
    assert {f"psi_{n}" for n in feature_names()} <= breached
    assert {"psi_score", "alert_rate", "average_precision"} <= breached


def test_small_window_records_but_does_not_breach() -> None:
    rng = np.random.default_rng(6)
    reference = _window(rng, 5000, 0.0, 0.01)
    profile = build_profile(reference, reference[SCORE].to_numpy(), threshold=0.1)
    metrics = window_metrics(
        profile, _window(rng, 50, 0.6, 0.5), _labelled(rng, 0, True), Thresholds()
    )
    assert not [m.metric for m in metrics if m.breached]
    psi_score = next(m for m in metrics if m.metric == "psi_score")
    assert psi_score.value is not None
    assert psi_score.value > 0.2
    assert next(m for m in metrics if m.metric == "average_precision").value is None


def test_feature_drift_is_measured_on_the_feature_sample_only() -> None:
    """PostgreSQL keeps the features of alerts and of a fixed sample: alerts kept for being
    alerts are not a sample of the traffic, and must not count as drift."""
    rng = np.random.default_rng(7)
    reference = _window(rng, 20_000, 0.0, 0.01)
    profile = build_profile(reference, reference[SCORE].to_numpy(), threshold=0.1)
    window = _window(rng, 5000, 0.0, 0.01)
    window["in_feature_sample"] = True
    outliers = window.index[:1000]  # features far from the reference, outside the sample
    window.loc[outliers, feature_names()] = window.loc[outliers, feature_names()] * 10
    window.loc[outliers, "in_feature_sample"] = False
    by_name = {m.metric: m for m in window_metrics(profile, window, _labelled(rng, 0, True),
                                                  Thresholds())}  # fmt: skip
    assert not [m for m in by_name if m.startswith("psi_") and by_name[m].breached]
    assert by_name["psi_txn_amount"].details == {"rows": 4000}
    assert by_name["psi_score"].details == {"rows": 5000}
    window["in_feature_sample"] = True  # the same rows counted: the shift is seen
    breached = {m.metric for m in window_metrics(profile, window, _labelled(rng, 0, True),
                                                 Thresholds()) if m.breached}  # fmt: skip
    assert len(breached & {f"psi_{n}" for n in feature_names()}) > len(feature_names()) / 2
