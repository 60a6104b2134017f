"""Cold-start anomaly model: normalised scores, threshold from the target alert rate."""

from __future__ import annotations

import numpy as np
import pytest

from fraudstream.model.anomaly import fit_anomaly


def rows(seed: int = 2, n: int = 2000) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 4))
    x[rng.uniform(size=n) < 0.2, 3] = np.nan  # optional feature absent
    return x


def test_scores_lie_in_unit_range_and_the_threshold_hits_the_alert_rate() -> None:
    x = rows()
    scorer, threshold = fit_anomaly(x, target_alert_rate=0.02)
    scores = scorer.score(x)
    assert scores.min() == pytest.approx(0.0)
    assert scores.max() == pytest.approx(1.0)
    assert np.mean(scores >= threshold) == pytest.approx(0.02, abs=0.002)
    proba = scorer.predict_proba(x[:10])
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    assert scorer.get_params()["n_jobs"] == 1


def test_outliers_score_higher_than_typical_rows_and_are_clipped() -> None:
    scorer, _ = fit_anomaly(rows(), target_alert_rate=0.01)
    typical = scorer.score(np.zeros((1, 4)))[0]
    far = scorer.score(np.full((1, 4), 50.0))[0]
    assert far > typical
    assert far <= 1.0


def test_an_impossible_alert_rate_is_refused() -> None:
    with pytest.raises(ValueError, match="alert rate"):
        fit_anomaly(rows(), target_alert_rate=0.0)
