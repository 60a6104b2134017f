"""The values a rule expression computes, and what a missing value does.

``Kind`` is an expression's type; an ``Expr`` carries its two evaluators, ``vec`` on a
batch's arrays and ``one`` on a single row's Python values. The missing-value helpers here
are the one definition both evaluators use (docs/rules.md, "Missing values").
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd

Kind = Literal["number", "string", "bool"]
Columns = Mapping[str, np.ndarray]
"""A batch as arrays by name: float64 for numbers (NaN missing), object for strings (None or
NaN missing)."""
Row = Mapping[str, Any]
"""One transaction: a float (NaN missing) or a str/None per name."""


class ExpressionError(ValueError):
    """A condition that cannot be accepted: the message names the problem and the fix."""


@dataclass(frozen=True)
class Expr:
    """A checked expression: its kind, the columns it reads, and its two evaluators."""

    kind: Kind
    names: frozenset[str]
    vec: Callable[[Columns], Any]
    one: Callable[[Row], Any]


def missing_vec(x: np.ndarray, kind: Kind) -> np.ndarray:
    """Element-wise: NaN for numbers, null (None or NaN) for strings."""
    if kind == "number":
        return np.asarray(np.isnan(x), dtype=bool)
    return np.asarray(pd.isna(x), dtype=bool)


def missing_one(x: Any) -> bool:
    """A single value: None, NaN or pandas' NA."""
    return x is None or x is pd.NA or (isinstance(x, float) and math.isnan(x))


def divide_vec(a: Any, b: Any) -> Any:
    """``a / b``, missing where ``b`` is 0."""
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.true_divide(a, b)
    return np.where(np.asarray(b) == 0, np.nan, out)


def divide_one(a: float, b: float) -> float:
    """``a / b``, missing when ``b`` is 0."""
    return math.nan if b == 0 else a / b
