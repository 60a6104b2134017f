"""The promotion gate and the rules baseline on hand-made cases."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from fraudstream.features.catalogue import feature_names
from fraudstream.model.baselines import RULES, rules_score
from fraudstream.model.gate import decide


def report(ap: float, cp: float) -> dict[str, float]:
    return {"average_precision": ap, "card_precision_at_100": cp}


def test_first_model_is_promoted() -> None:
    assert decide(report(0.1, 0.0), None).promote


def test_higher_ap_and_not_worse_cp_is_promoted() -> None:
    d = decide(report(0.8, 0.30), report(0.7, 0.30))
    assert d.promote
    assert "0.8000 vs 0.7000" in d.reason


@pytest.mark.parametrize(
    ("challenger", "why"),
    [
        (report(0.7, 0.5), "Average Precision is not higher"),
        (report(0.6, 0.5), "Average Precision is not higher"),
        (report(0.9, 0.29), "Card Precision@100 is worse"),
        (report(math.nan, 0.3), "no frauds"),
    ],
)
def test_refusals_say_why(challenger: dict[str, float], why: str) -> None:
    d = decide(challenger, report(0.7, 0.30))
    assert not d.promote
    assert why in d.reason


def test_rules_score_weights_triggered_rules_and_ignores_missing_values() -> None:
    frame = pd.DataFrame(np.nan, index=range(3), columns=feature_names())
    frame.loc[1, "card_count_1h"] = 6  # weight 2
    frame.loc[2, ["card_count_1h", "txn_is_night"]] = [1, 1]  # weight 0.5
    total = sum(w for _, _, w in RULES)
    np.testing.assert_allclose(rules_score(frame), [0.0, 2 / total, 0.5 / total])
