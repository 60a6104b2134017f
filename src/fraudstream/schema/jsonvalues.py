"""Values as strict JSON holds them: JSON has no NaN or infinity (Python's ``json`` writes them
anyway, and PostgreSQL's ``jsonb`` and most parsers refuse them). A metric that is undefined
for a run (the calibration error of an alert band with no alert) becomes null."""

from __future__ import annotations

import math
from typing import Any


def finite(value: Any) -> Any:
    """``value`` with every NaN or infinite float, at any depth of dicts and lists, as None."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [finite(v) for v in value]
    return value
