"""Values as strict JSON holds them: JSON has no NaN or infinity (Python's ``json`` writes them
anyway, and PostgreSQL's ``jsonb`` and most parsers refuse them). A metric that is undefined
for a run (the calibration error of an alert band with no alert) becomes null."""

from __future__ import annotations

import math
from typing import Any, SupportsFloat


def finite_float(value: SupportsFloat) -> float | None:
    """One number as strict JSON holds it: a plain float (a NumPy scalar too), None for NaN
    (a missing feature value, a metric undefined for the run) and for an infinity."""
    number = float(value)
    return number if math.isfinite(number) else None


def finite(value: Any) -> Any:
    """``value`` with every float, at any depth of dicts and lists, as ``finite_float`` has it."""
    if isinstance(value, float):
        return finite_float(value)
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [finite(v) for v in value]
    return value
