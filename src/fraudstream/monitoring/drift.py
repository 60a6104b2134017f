"""Population Stability Index of a window against a training reference.

PSI = sum over bins of (actual - expected) * ln(actual / expected), the missing bucket
included. Rules of thumb used across credit and fraud scoring: below 0.1 stable, 0.1-0.2
a moderate shift, above 0.2 a significant one. An empty bin on either side would make the
logarithm infinite: shares are floored at ``EPSILON`` first, so an empty bin counts as a
large but finite contribution.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from fraudstream.monitoring.profile import ColumnProfile, bin_shares

EPSILON = 1e-4


def psi(expected: Sequence[float] | np.ndarray, actual: Sequence[float] | np.ndarray) -> float:
    """PSI of two share vectors over the same bins (each summing to about 1)."""
    e = np.clip(np.asarray(expected, dtype=np.float64), EPSILON, None)
    a = np.clip(np.asarray(actual, dtype=np.float64), EPSILON, None)
    if e.shape != a.shape:
        raise ValueError(f"share vectors differ in length: {e.shape} vs {a.shape}")
    return float(np.sum((a - e) * np.log(a / e)))


def column_psi(reference: ColumnProfile, values: np.ndarray) -> float:
    """PSI of ``values`` binned with the reference's edges, the missing share as one more bin.

    NaN for an empty window (nothing to compare).
    """
    if len(values) == 0:
        return float("nan")
    shares, missing = bin_shares(values, reference.edges)
    return psi([*reference.proportions, reference.missing], [*shares, missing])
