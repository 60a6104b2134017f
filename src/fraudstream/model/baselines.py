"""The baselines every report shows beside the model: logistic regression and a rules score."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

# (feature, predicate, weight): what an analyst's first rule set looks like.
RULES: tuple[tuple[str, str, float], ...] = (
    ("card_amount_zscore_30d", "> 3", 2.0),
    ("card_amount_ratio_30d", "> 5", 1.0),
    ("card_count_1h", ">= 5", 2.0),
    ("card_distinct_merchants_1h", ">= 3", 1.0),
    ("card_speed_kmh_prev", "> 900", 2.0),
    ("card_new_merchant_30d", "== 1", 0.5),
    ("merchant_fraud_risk_7d", "> 0.1", 2.0),
    ("txn_is_night", "== 1", 0.5),
)


def rules_score(frame: pd.DataFrame) -> np.ndarray:
    """Weighted share of the rules a row triggers, in [0, 1]; a missing feature triggers nothing."""
    total = sum(weight for _, _, weight in RULES)
    score = np.zeros(len(frame))
    for column, predicate, weight in RULES:
        op, value = predicate.split()
        x = frame[column].to_numpy(dtype=np.float64)
        hit = {
            ">": x > float(value),
            ">=": x >= float(value),
            "==": x == float(value),
        }[op]
        score += weight * np.nan_to_num(hit.astype(float))
    return score / total


def logistic_baseline(x_train: np.ndarray, y_train: np.ndarray) -> Pipeline:
    """Median-imputed, standardised, class-balanced logistic regression, fitted."""
    model = Pipeline(
        [
            ("impute", SimpleImputer(strategy="median", keep_empty_features=True)),
            ("scale", StandardScaler()),
            ("lr", LogisticRegression(class_weight="balanced", max_iter=1000)),
        ]
    )
    model.fit(x_train, y_train)
    return model
