"""Strict JSON values: NaN and infinity, at any depth, become null (jsonb refuses them)."""

from __future__ import annotations

import json
import math

import pytest

from fraudstream.schema.jsonvalues import finite


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
