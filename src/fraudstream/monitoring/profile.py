"""The training reference of a model: per-column bin edges and proportions.

A profile is built once from the training feature matrix (and the model's scores on it) and
logged with the training run as ``reference/profile.json``. Monitoring compares a window of
scored traffic against it bin by bin (PSI), so the bins must come from the training data, not
from the window: quantile cut points of the training values, deduplicated (count features
repeat values), with NaN kept as its own "missing" bucket because NaN means "unknown" to the
model and a jump in unknowns is drift too.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from fraudstream.features.catalogue import FEATURE_SET_VERSION, feature_names

PROFILE_ARTIFACT = "reference/profile.json"
SCORE = "score"
DEFAULT_BINS = 10
FORMAT_VERSION = 1


class ProfileError(ValueError):
    """A profile document is malformed or was written by an incompatible version."""


@dataclass(frozen=True)
class ColumnProfile:
    """``edges``: ascending interior cut points; bin i holds ``edges[i-1] < x <= edges[i]``
    (open at both ends), so there are ``len(edges) + 1`` proportions. ``missing``: share of NaN.
    Proportions and ``missing`` sum to 1."""

    edges: tuple[float, ...]
    proportions: tuple[float, ...]
    missing: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "edges": list(self.edges),
            "proportions": list(self.proportions),
            "missing": self.missing,
        }


@dataclass(frozen=True)
class Profile:
    """Every feature of the catalogue plus ``score``; ``alert_rate`` is the share of training
    rows at or above ``threshold`` (None when the profile has no scores)."""

    feature_set_version: str
    rows: int
    columns: dict[str, ColumnProfile]
    threshold: float | None
    alert_rate: float | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "format_version": FORMAT_VERSION,
            "feature_set_version": self.feature_set_version,
            "rows": self.rows,
            "threshold": self.threshold,
            "alert_rate": self.alert_rate,
            "columns": {name: col.to_dict() for name, col in self.columns.items()},
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1)

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> Profile:
        if doc.get("format_version") != FORMAT_VERSION:
            raise ProfileError(
                f"profile format {doc.get('format_version')!r} is not {FORMAT_VERSION}: "
                "retrain the model to log a current profile"
            )
        try:
            columns = {
                name: ColumnProfile(
                    tuple(float(e) for e in col["edges"]),
                    tuple(float(p) for p in col["proportions"]),
                    float(col["missing"]),
                )
                for name, col in doc["columns"].items()
            }
            return cls(
                feature_set_version=str(doc["feature_set_version"]),
                rows=int(doc["rows"]),
                columns=columns,
                threshold=doc.get("threshold"),
                alert_rate=doc.get("alert_rate"),
            )
        except (KeyError, TypeError) as exc:
            raise ProfileError(f"malformed profile: missing or bad {exc}") from None


def bin_shares(values: np.ndarray, edges: tuple[float, ...]) -> tuple[np.ndarray, float]:
    """Proportions of ``values`` per bin of ``edges`` (NaN excluded) and the NaN share.

    The proportions and the NaN share sum to 1; an empty input gives zeros and 0.0.
    """
    values = np.asarray(values, dtype=np.float64)
    if len(values) == 0:
        return np.zeros(len(edges) + 1), 0.0
    present = values[~np.isnan(values)]
    counts = np.bincount(
        np.searchsorted(np.asarray(edges, dtype=np.float64), present, side="left"),
        minlength=len(edges) + 1,
    )
    return counts / len(values), float(1.0 - len(present) / len(values))


def profile_column(values: np.ndarray, bins: int = DEFAULT_BINS) -> ColumnProfile:
    """Quantile bins of the non-missing values (at most ``bins``; fewer for repeated values).

    Cut points are observed values (``inverted_cdf``), so a count feature gets one bin per
    frequent value instead of interpolated cuts with empty bins between them.
    """
    values = np.asarray(values, dtype=np.float64)
    present = values[~np.isnan(values)]
    if len(present) == 0:
        edges: tuple[float, ...] = ()
    else:
        qs = np.linspace(0.0, 1.0, bins + 1)[1:-1]
        cuts = np.quantile(present, qs, method="inverted_cdf")
        # A cut at the maximum would leave the last bin empty by construction.
        edges = tuple(float(c) for c in np.unique(cuts) if c < present.max())
    shares, missing = bin_shares(values, edges)
    return ColumnProfile(edges, tuple(float(s) for s in shares), missing)


def build_profile(
    features: pd.DataFrame,
    scores: np.ndarray | None = None,
    threshold: float | None = None,
    bins: int = DEFAULT_BINS,
) -> Profile:
    """The reference profile of a training feature matrix (catalogue columns) and its scores.

    Called by training on the rows the model was fitted on; pure and deterministic.
    """
    missing = [n for n in feature_names() if n not in features.columns]
    if missing:
        raise ProfileError(f"feature matrix lacks catalogue columns: {', '.join(missing)}")
    columns = {
        name: profile_column(features[name].to_numpy(np.float64), bins) for name in feature_names()
    }
    alert_rate = None
    if scores is not None:
        columns[SCORE] = profile_column(np.asarray(scores, dtype=np.float64), bins)
        if threshold is not None:
            alert_rate = float(np.mean(np.asarray(scores) >= threshold)) if len(scores) else 0.0
    return Profile(FEATURE_SET_VERSION, len(features), columns, threshold, alert_rate)
