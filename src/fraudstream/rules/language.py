"""The rule language: a checked subset of Python expressions, compiled twice.

A condition is parsed by the standard library's ``ast`` (no hand-written parser) and
accepted only if every node is on a short whitelist: ``and``/``or``/``not``,
comparisons (chains too), ``in``/``not in`` against a named list or a literal list,
``+ - * /``, unary minus, number/string/bool literals, names, and calls of the
functions in ``FUNCTIONS``. Every name is resolved and typed at load time against a
``Vocabulary`` (the feature catalogue, the transaction contract, ``score`` and the rule
set's lists); nothing is ever handed to ``eval``.

A checked expression becomes an ``Expr``: a pair of closures over the same tree,
``vec(columns)`` on numpy arrays (a batch: the stream's partition, a backtest) and
``one(row)`` on plain Python values (the API's single transaction). Both follow the
missing-value rules below, and a test compares them row by row.

Missing values: a number is missing when NaN (a feature over an empty window, a null
latitude), a string when null. Arithmetic on a missing value is missing; ``x / 0`` is
missing (a literal zero divisor is refused at load). **A comparison with a missing value
is false, whatever the operator** (``!=`` and ``not in`` too). ``not`` then negates that
false, so ``not (x > 5)`` holds when ``x`` is missing: write ``x <= 5`` to demand a value.
``coalesce(x, d)`` replaces a missing ``x`` by ``d``; ``is_missing(x)`` tests it.
"""

from __future__ import annotations

import ast
import difflib
import math
import operator
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from fraudstream.rules.functions import FUNCTIONS, call
from fraudstream.rules.values import (
    Columns,
    Expr,
    ExpressionError,
    Kind,
    Row,
    divide_one,
    divide_vec,
    missing_one,
    missing_vec,
)

__all__ = ["FUNCTIONS", "Expr", "ExpressionError", "Kind", "Vocabulary", "compile_condition"]
MAX_LENGTH = 2000


@dataclass(frozen=True)
class Vocabulary:
    """What a condition may name: typed columns (their ``Kind`` by name) and named lists
    (their element kind and values)."""

    columns: Mapping[str, Kind]
    lists: Mapping[str, tuple[Kind, tuple[Any, ...]]]


_COMPARE: dict[type[ast.cmpop], Callable[[Any, Any], Any]] = {
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
}
_ARITH: dict[type[ast.operator], Callable[[Any, Any], Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
}
_SYMBOL = {ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">=", ast.Eq: "==", ast.NotEq: "!="}


def _const(value: Any, kind: Kind) -> Expr:
    return Expr(kind, frozenset(), lambda _c: value, lambda _r: value)


class _Compiler:
    """Walks a parsed condition, checks each node and builds its ``Expr``."""

    def __init__(self, vocabulary: Vocabulary) -> None:
        self.vocabulary = vocabulary

    def fail(self, node: ast.AST, problem: str) -> ExpressionError:
        column = getattr(node, "col_offset", None)
        where = f" (at column {column + 1})" if column is not None else ""
        return ExpressionError(f"{problem}{where}")

    def compile(self, node: ast.AST) -> Expr:
        handler = getattr(self, f"visit_{type(node).__name__.lower()}", None)
        if handler is None:
            raise self.fail(node, f"{_describe(node)} is not part of the rule language")
        expr: Expr = handler(node)
        return expr

    def want(self, node: ast.AST, kind: Kind, role: str) -> Expr:
        expr = self.compile(node)
        if expr.kind != kind:
            raise self.fail(node, f"{role} must be a {kind}, got a {expr.kind}: {_source(node)}")
        return expr

    # Leaves
    def visit_constant(self, node: ast.Constant) -> Expr:
        value = node.value
        if isinstance(value, bool):
            return _const(value, "bool")
        if isinstance(value, int | float):
            return _const(float(value), "number")
        if isinstance(value, str):
            return _const(value, "string")
        raise self.fail(
            node, f"the literal {value!r} is not allowed (numbers, strings, True, False)"
        )

    def visit_name(self, node: ast.Name) -> Expr:
        name = node.id
        if name.startswith("_"):
            raise self.fail(node, f"names starting with '_' are not allowed: {name}")
        if name in ("True", "False"):
            return _const(name == "True", "bool")
        if name in self.vocabulary.lists:
            raise self.fail(node, f"the list {name} can only follow 'in' or 'not in'")
        kind = self.vocabulary.columns.get(name)
        if kind is None:
            known = [*self.vocabulary.columns, *self.vocabulary.lists]
            close = difflib.get_close_matches(name, known, n=3)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            raise self.fail(node, f"unknown name {name!r}{hint}")

        def one(row: Row) -> Any:
            value = row.get(name)
            if kind == "number":
                return math.nan if value is None else float(value)
            return value

        return Expr(kind, frozenset({name}), lambda c: c[name], one)

    # Boolean logic
    def visit_boolop(self, node: ast.BoolOp) -> Expr:
        parts = [self.want(v, "bool", "each side of and/or") for v in node.values]
        names = frozenset().union(*(p.names for p in parts))
        if isinstance(node.op, ast.And):
            vec_op: Callable[[Any, Any], Any] = np.logical_and
            one_op: Callable[[Any], bool] = all
        else:
            vec_op, one_op = np.logical_or, any
        vecs = [p.vec for p in parts]
        ones = [p.one for p in parts]

        def vec(c: Columns) -> Any:
            out = vecs[0](c)
            for f in vecs[1:]:
                out = vec_op(out, f(c))
            return out

        return Expr("bool", names, vec, lambda r: one_op(f(r) for f in ones))

    def visit_unaryop(self, node: ast.UnaryOp) -> Expr:
        if isinstance(node.op, ast.Not):
            inner = self.want(node.operand, "bool", "the operand of not")
            return Expr(
                "bool",
                inner.names,
                lambda c: np.logical_not(inner.vec(c)),
                lambda r: not inner.one(r),
            )
        if isinstance(node.op, ast.USub | ast.UAdd):
            inner = self.want(node.operand, "number", "the operand of a sign")
            if isinstance(node.op, ast.UAdd):
                return inner
            return Expr("number", inner.names, lambda c: -inner.vec(c), lambda r: -inner.one(r))
        raise self.fail(node, f"the operator {type(node.op).__name__} is not part of the language")

    # Arithmetic
    def visit_binop(self, node: ast.BinOp) -> Expr:
        if not isinstance(node.op, ast.Add | ast.Sub | ast.Mult | ast.Div):
            raise self.fail(node, "only + - * / are allowed in arithmetic")
        left = self.want(node.left, "number", "an arithmetic operand")
        right = self.want(node.right, "number", "an arithmetic operand")
        names = left.names | right.names
        lv, rv, lo, ro = left.vec, right.vec, left.one, right.one
        if isinstance(node.op, ast.Div):
            if _is_zero(node.right):
                raise self.fail(node, f"division by zero: {_source(node)}")
            return Expr(
                "number",
                names,
                lambda c: divide_vec(lv(c), rv(c)),
                lambda r: divide_one(lo(r), ro(r)),
            )
        op = _ARITH[type(node.op)]
        return Expr("number", names, lambda c: op(lv(c), rv(c)), lambda r: op(lo(r), ro(r)))

    # Comparisons
    def visit_compare(self, node: ast.Compare) -> Expr:
        parts: list[Expr] = []
        left_node = node.left
        for op, right_node in zip(node.ops, node.comparators, strict=True):
            if isinstance(op, ast.In | ast.NotIn):
                parts.append(self.membership(left_node, right_node, isinstance(op, ast.NotIn)))
            elif type(op) in _COMPARE:
                parts.append(self.comparison(op, left_node, right_node))
            else:
                raise self.fail(node, "'is' and 'is not' are not allowed: use is_missing(x) or ==")
            left_node = right_node
        if len(parts) == 1:
            return parts[0]
        vecs, ones = [p.vec for p in parts], [p.one for p in parts]

        def vec(c: Columns) -> Any:
            out = vecs[0](c)
            for f in vecs[1:]:
                out = np.logical_and(out, f(c))
            return out

        return Expr(
            "bool",
            frozenset().union(*(p.names for p in parts)),
            vec,
            lambda r: all(f(r) for f in ones),
        )

    def comparison(self, op: ast.cmpop, left_node: ast.expr, right_node: ast.expr) -> Expr:
        left, right = self.compile(left_node), self.compile(right_node)
        symbol = _SYMBOL[type(op)]
        if left.kind != right.kind:
            raise self.fail(
                left_node,
                f"cannot compare a {left.kind} with a {right.kind}: "
                f"{_source(left_node)} {symbol} {_source(right_node)}",
            )
        if left.kind != "number" and symbol not in ("==", "!="):
            raise self.fail(left_node, f"{symbol} compares numbers only, not {left.kind}s")
        compare = _COMPARE[type(op)]
        kinds = (left.kind, right.kind)
        lv, rv, lo, ro = left.vec, right.vec, left.one, right.one

        def vec(c: Columns) -> Any:
            a, b = lv(c), rv(c)
            out = np.asarray(compare(a, b), dtype=bool)
            if kinds[0] == "bool":
                return out
            present = ~missing_vec(np.asarray(a), kinds[0]) & ~missing_vec(np.asarray(b), kinds[1])
            return out & present

        def one(r: Row) -> bool:
            a, b = lo(r), ro(r)
            if missing_one(a) or missing_one(b):
                return False
            return bool(compare(a, b))

        return Expr("bool", left.names | right.names, vec, one)

    def membership(self, left_node: ast.expr, right_node: ast.expr, negated: bool) -> Expr:
        left = self.compile(left_node)
        kind, values = self.collection(right_node)
        if left.kind != kind:
            raise self.fail(
                left_node, f"{_source(left_node)} is a {left.kind}, the list holds {kind}s"
            )
        members = frozenset(values)
        listed = list(members)
        lv, lo = left.vec, left.one

        def vec(c: Columns) -> Any:
            a = lv(c)
            found = np.asarray(pd.Series(a, copy=False).isin(listed).to_numpy(), dtype=bool)
            if negated:
                return ~found & ~missing_vec(np.asarray(a), left.kind)
            return found

        def one(r: Row) -> bool:
            a = lo(r)
            if missing_one(a):
                return False
            return (a not in members) if negated else (a in members)

        return Expr("bool", left.names, vec, one)

    def collection(self, node: ast.expr) -> tuple[Kind, tuple[Any, ...]]:
        """A named list or a literal list/tuple/set of constants of one kind."""
        if isinstance(node, ast.Name) and node.id in self.vocabulary.lists:
            return self.vocabulary.lists[node.id]
        if isinstance(node, ast.List | ast.Tuple | ast.Set):
            consts = [self.compile(e) for e in node.elts]
            if not consts or any(e.names for e in consts):
                raise self.fail(node, "a literal list must hold constants (at least one)")
            kinds = {e.kind for e in consts}
            if len(kinds) != 1 or "bool" in kinds:
                raise self.fail(node, "a literal list must hold only numbers or only strings")
            return kinds.pop(), tuple(e.one({}) for e in consts)
        raise self.fail(node, f"'in' needs a named list or a literal list, got {_source(node)}")

    # Functions
    def visit_call(self, node: ast.Call) -> Expr:
        name = node.func.id if isinstance(node.func, ast.Name) else None
        if name not in FUNCTIONS:
            raise self.fail(
                node,
                f"calling {_source(node.func)} is not allowed; functions: {', '.join(FUNCTIONS)}",
            )
        if node.keywords:
            raise self.fail(node, f"{name}() takes no keyword arguments")
        try:
            return call(name, [self.compile(a) for a in node.args])
        except ExpressionError as exc:
            raise self.fail(node, str(exc)) from None


def _is_zero(node: ast.expr) -> bool:
    """A literal zero divisor, signed or not."""
    while isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
        node = node.operand
    return (
        isinstance(node, ast.Constant)
        and isinstance(node.value, int | float)
        and not isinstance(node.value, bool)
        and node.value == 0
    )


def _source(node: ast.AST) -> str:
    return ast.unparse(node)


def _describe(node: ast.AST) -> str:
    names = {
        "Attribute": "attribute access",
        "Subscript": "indexing",
        "Lambda": "lambda",
        "IfExp": "a conditional expression",
        "NamedExpr": "assignment (:=)",
        "JoinedStr": "an f-string",
        "ListComp": "a comprehension",
        "GeneratorExp": "a comprehension",
        "DictComp": "a comprehension",
        "SetComp": "a comprehension",
        "Dict": "a dict",
        "Starred": "unpacking (*)",
        "Await": "await",
    }
    kind = type(node).__name__
    return f"{names.get(kind, kind)} ({_source(node)})" if isinstance(node, ast.expr) else kind


def compile_condition(text: str, vocabulary: Vocabulary) -> Expr:
    """Parse and check one condition; it must be a bool. Raises ``ExpressionError``."""
    if not isinstance(text, str) or not text.strip():
        raise ExpressionError("the condition is empty")
    if len(text) > MAX_LENGTH:
        raise ExpressionError(f"the condition is longer than {MAX_LENGTH} characters")
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as exc:
        raise ExpressionError(f"syntax error at column {exc.offset}: {exc.msg}") from None
    compiler = _Compiler(vocabulary)
    expr = compiler.compile(tree.body)
    if expr.kind != "bool":
        raise ExpressionError(
            f"the condition is a {expr.kind}, it must be true or false: add a comparison, "
            f"e.g. {text.strip()} > 0"
        )
    return expr
