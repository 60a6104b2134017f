"""Strict JSON values: NaN and infinity, at any depth, become null (jsonb refuses them)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from fraudstream.schema.jsonvalues import finite, finite_float


def test_undefined_metrics_become_null_at_any_depth() -> None:
    metrics = {
        "test_ap": 0.91,
        "test_ece_alert_band": math.nan,
        "lift": math.inf,
        "folds": [{"ap": -math.inf, "rows": 3}],
        "name": "xgboost",
    }
    out = finite(metrics)
    assert out == {
        "test_ap": 0.91,
        "test_ece_alert_band": None,
        "lift": None,
        "folds": [{"ap": None, "rows": 3}],
        "name": "xgboost",
    }
    json.dumps(out, allow_nan=False)  # raises on any NaN or infinity left
    with pytest.raises(ValueError, match="JSON compliant"):
        json.dumps(metrics, allow_nan=False)


def test_one_number_is_a_plain_float_or_null() -> None:
    # The scalar rule `finite` applies at every depth: monitoring metrics (a PSI, CP@100)
    # and the API's feature values and reasons go through it.
    assert finite_float(np.float64(0.25)) == 0.25
    assert type(finite_float(np.float64(0.25))) is float
    assert type(finite_float(np.float32(0.5))) is float
    assert finite_float(3) == 3.0
    for undefined in (math.nan, math.inf, -math.inf, np.float64("nan"), np.float32("inf")):
        assert finite_float(undefined) is None
    assert finite({"psi": np.float64("nan"), "rows": [np.float64(1.5)]}) == {
        "psi": None,
        "rows": [1.5],
    }
