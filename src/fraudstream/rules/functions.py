"""The rule language's functions, batch and single row: abs, min, max, coalesce, is_missing.

``min`` and ``max`` skip a missing argument (missing only when all are); ``coalesce`` is its
first present argument; ``is_missing`` tests a number or a string.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from fraudstream.rules.values import Columns, Expr, ExpressionError, Row, missing_one, missing_vec

FUNCTIONS = ("abs", "min", "max", "coalesce", "is_missing")


def call(name: str, args: Sequence[Expr]) -> Expr:
    """``name(*args)`` of checked arguments; a wrong count or kind is an ``ExpressionError``."""
    if name == "is_missing":
        if len(args) != 1:
            raise ExpressionError("is_missing(x) takes one argument")
        inner = args[0]
        if inner.kind == "bool":
            raise ExpressionError("is_missing() takes a number or a string")
        kind = inner.kind
        return Expr(
            "bool",
            inner.names,
            lambda c: missing_vec(np.asarray(inner.vec(c)), kind),
            lambda r: missing_one(inner.one(r)),
        )
    if any(a.kind != "number" for a in args):
        raise ExpressionError(f"each argument of {name}() must be a number")
    names = frozenset().union(*(a.names for a in args))
    vecs, ones = [a.vec for a in args], [a.one for a in args]
    if name == "abs":
        if len(args) != 1:
            raise ExpressionError("abs(x) takes one argument")
        return Expr("number", names, lambda c: np.abs(vecs[0](c)), lambda r: abs(ones[0](r)))
    if len(args) < 2:
        raise ExpressionError(f"{name}() takes two or more arguments")
    if name == "coalesce":
        return Expr(
            "number", names, lambda c: _coalesce_vec(vecs, c), lambda r: _coalesce_one(ones, r)
        )
    return _extreme(name, names, vecs, ones)


def _extreme(
    name: str,
    names: frozenset[str],
    vecs: Sequence[Callable[[Columns], Any]],
    ones: Sequence[Callable[[Row], Any]],
) -> Expr:
    pick = np.fmin if name == "min" else np.fmax
    scalar = min if name == "min" else max

    def vec(c: Columns) -> Any:
        out = vecs[0](c)
        for f in vecs[1:]:
            out = pick(out, f(c))
        return out

    def one(r: Row) -> float:
        present = [v for v in (f(r) for f in ones) if not math.isnan(v)]
        return scalar(present) if present else math.nan

    return Expr("number", names, vec, one)


def _coalesce_vec(vecs: Sequence[Callable[[Columns], Any]], c: Columns) -> Any:
    out = vecs[0](c)
    for f in vecs[1:]:
        out = np.where(np.isnan(out), f(c), out)
    return out


def _coalesce_one(ones: Sequence[Callable[[Row], Any]], r: Row) -> float:
    for f in ones:
        value: float = f(r)
        if not math.isnan(value):
            return value
    return math.nan
