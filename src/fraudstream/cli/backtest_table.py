"""The table a rules backtest prints (`rules backtest`, `evaluate --rules`): per rule, then
per way of deciding, the decisions' counts below."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from rich.table import Table

if TYPE_CHECKING:
    from fraudstream.rules.backtest import Backtest, Line


def _figure(value: float | int | None, share: bool = False) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, int):
        return f"{value:,}"
    return f"{value:.2%}" if share else f"{value:.3f}"


def backtest_table(result: Backtest) -> Table:
    """A backtest's figures per rule, then per way of deciding; its decisions' counts below."""
    model = "" if result.threshold is None else f", model threshold {result.threshold:.4f}"
    decided = ", ".join(f"{outcome} {n:,}" for outcome, n in result.outcomes.items())
    table = Table(
        title=f"rule set {result.version} on {result.rows:,} transactions "
        f"({result.frauds:,} frauds{model})",
        caption=f"decisions ({'model + rules' if model else 'rules alone'}): {decided}",
    )
    for column in ("", "outcome", "hits", "frauds", "precision", "recall", "alert rate"):
        table.add_column(column, justify="left" if not column or column == "outcome" else "right")
    table.add_column("model overlap", justify="right")
    table.add_column("frauds beyond model", justify="right")

    def add(line: Line) -> None:
        table.add_row(
            line.name,
            line.outcome,
            _figure(line.hits),
            _figure(line.frauds),
            _figure(line.precision),
            _figure(line.recall),
            _figure(line.alert_rate, share=True),
            _figure(line.model_overlap, share=True),
            _figure(line.beyond_model),
        )

    for line in result.rules:
        add(line)
    table.add_section()
    for line in result.totals:
        add(line)
    return table
