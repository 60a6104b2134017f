"""`fraudstream rules check | backtest | activate | active`: wiring around rules/ and
services.rules (docs/rules.md)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from fraudstream.cli.backtest_table import backtest_table
from fraudstream.cli.inputs import (
    JsonOpt,
    LabelOpt,
    StrictOpt,
    TxnOpt,
    json_mode,
    print_json,
    read_inputs,
    read_table,
)
from fraudstream.cli.train import (
    DaysOpt,
    StartOpt,
    console,
    holdout_window,
    replay_features,
    with_transaction_fields,
)

if TYPE_CHECKING:
    import pandas as pd

    from fraudstream.rules.ruleset import RuleSet

rules_app = typer.Typer(
    no_args_is_help=True,
    help="Declarative fraud rules: check, backtest and activate a rule set; show the active one.",
)
RulesFile = Annotated[Path, typer.Argument(help="A rule set file (YAML or JSON).")]


def _rules_table(rule_set: RuleSet) -> Table:
    table = Table(title=f"rule set {rule_set.version}: {len(rule_set.rules)} rules")
    for column in ("#", "name", "outcome", "priority", "condition"):
        table.add_column(column, overflow="fold")
    for i, rule in enumerate(rule_set.rules, 1):
        table.add_row(str(i), rule.name, rule.outcome, str(rule.priority), rule.condition)
    return table


@rules_app.command("check")
def check(path: RulesFile, as_json: JsonOpt = False) -> None:
    """Validate a rule set (names, types, lists, outcomes) and print its rules in the order
    they are evaluated. A problem is one line naming the rule; the exit status is then 1."""
    from fraudstream.rules.ruleset import load_rule_set

    json_mode(console, as_json)
    rule_set = load_rule_set(path)
    console.print(_rules_table(rule_set))
    lists = ", ".join(f"{name} ({len(v)})" for name, v in rule_set.lists.items()) or "none"
    console.print(f"lists: {lists}")
    if as_json:
        print_json(
            {
                "command": "rules check",
                "version": rule_set.version,
                "rules": [
                    {
                        "name": r.name,
                        "outcome": r.outcome,
                        "priority": r.priority,
                        "condition": r.condition,
                        "reads": sorted(r.expr.names),
                    }
                    for r in rule_set.rules
                ],
                "lists": {name: len(v) for name, v in rule_set.lists.items()},
            }
        )


@rules_app.command("activate")
def activate(
    path: RulesFile,
    by: Annotated[str, typer.Option("--by", help="Who activates it (kept in the history).")],
    comment: Annotated[str, typer.Option(help="Why (kept in the history).")] = "",
    as_json: JsonOpt = False,
) -> None:
    """Check a rule set file, store it in PostgreSQL and make it the active set (as PUT /rules
    does): the API's workers decide with it from their next poll. An invalid set is refused
    with the rule's error and the active set stays. The scorer picks it up the same way."""
    import yaml

    from fraudstream.rules.ruleset import load_rule_set
    from fraudstream.services import rules
    from fraudstream.settings import load_settings

    json_mode(console, as_json)
    load_rule_set(path)  # the file's own errors name the file
    document = yaml.safe_load(path.read_text("utf-8"))
    rule_set, done = rules.activate(load_settings().postgres, document, by, comment)
    was = done.previous_version or "none"
    console.print(f"rule set {rule_set.version} is active ({len(rule_set.rules)} rules; was {was})")
    if as_json:
        print_json(
            {
                "command": "rules activate",
                "version": done.version,
                "previous_version": done.previous_version,
                "activated_by": done.activated_by,
                "activated_at": done.activated_at.isoformat(),
            }
        )


@rules_app.command("active")
def active(
    history: Annotated[int, typer.Option(min=1, help="Activations to list.")] = 10,
    as_json: JsonOpt = False,
) -> None:
    """The active rule set (its rules in evaluation order) and the latest activations."""
    from fraudstream.services import rules
    from fraudstream.settings import load_settings

    json_mode(console, as_json)
    settings = load_settings().postgres
    found = rules.active(settings)
    past = rules.history(settings, history)
    if found is None:
        console.print("no rule set is active: the model decides alone")
    else:
        console.print(_rules_table(found.rule_set))
    table = Table(title="activations, newest first")
    for column in ("version", "replaced", "by", "at", "comment"):
        table.add_column(column, overflow="fold")
    for a in past:
        at = a.activated_at.isoformat(timespec="seconds")
        table.add_row(a.version, a.previous_version or "-", a.activated_by, at, a.comment)
    console.print(table)
    if as_json:
        print_json(
            {
                "command": "rules active",
                "version": found.rule_set.version if found is not None else None,
                "history": [
                    {
                        "version": a.version,
                        "previous_version": a.previous_version,
                        "activated_by": a.activated_by,
                        "comment": a.comment,
                        "activated_at": a.activated_at.isoformat(),
                    }
                    for a in past
                ],
            }
        )


def _scores(
    rows: pd.DataFrame, model: str | None, scores: str | None, threshold: float | None
) -> tuple[pd.DataFrame, float | None]:
    """``rows`` with a ``score`` column (NaN without a model) and the model's threshold."""
    import numpy as np

    if scores:
        found = read_table(scores)
        if not {"transaction_id", "score"} <= set(found.columns):
            raise typer.BadParameter(
                f"{scores} needs the columns transaction_id and score (as score-file writes)",
                param_hint="--scores",
            )
        found = found[["transaction_id", "score"]].drop_duplicates("transaction_id")
        return rows.merge(found, on="transaction_id", how="left"), threshold
    if model:
        from fraudstream.adapters import registry
        from fraudstream.model.experiment import scores_of
        from fraudstream.settings import load_settings

        loaded = registry.load_model(load_settings(), model)
        chosen = loaded.threshold if threshold is None else threshold
        return rows.assign(score=scores_of(loaded.model, rows)), chosen
    return rows.assign(score=np.nan), None


@rules_app.command("backtest")
def backtest(
    rules: Annotated[Path, typer.Option("--rules", help="A rule set file (YAML or JSON).")],
    transactions: TxnOpt = None,
    labels: LabelOpt = None,
    model: Annotated[
        str | None,
        typer.Option(help="A registered model (champion, challenger, a version or URI)."),
    ] = None,
    scores: Annotated[
        str | None,
        typer.Option(help="Instead of --model: a file of transaction_id, score (score-file's)."),
    ] = None,
    threshold: Annotated[
        float | None,
        typer.Option(min=0, max=1, help="The model's alert threshold [default: the model's]."),
    ] = None,
    start: StartOpt = None,
    days: DaysOpt = None,
    strict: StrictOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Measure a rule set on labelled transactions: per rule and for the whole set, hits,
    precision, recall, alert rate and the overlap with the model's alerts.

    Features come from the replay training uses; the period is --start/--days (default: all
    of it), without the cards already known compromised each day, as `evaluate` does. Without
    --model or --scores the model's figures are '-' and rules on `score` never fire.
    """
    from fraudstream.features.replay import attach_labels
    from fraudstream.model.split import holdout_rows
    from fraudstream.rules.backtest import backtest as run_backtest
    from fraudstream.rules.ruleset import load_rule_set

    json_mode(console, as_json)
    if model and scores:
        raise typer.BadParameter("give --model or --scores, not both", param_hint="--scores")
    if scores and threshold is None:
        raise typer.BadParameter("--scores needs --threshold", param_hint="--threshold")
    rule_set = load_rule_set(rules)  # first: a bad rule set costs no replay
    inputs = read_inputs(transactions, labels, None, True, strict, console)
    assert inputs.labels is not None
    txns, labs = inputs.transactions, inputs.labels
    split = holdout_window(inputs, start, days)
    rows = attach_labels(holdout_rows(replay_features(txns, labs), labs, split), labs)
    # Row shape: transaction_id, event_time, card_id, features, is_fraud, ... + the
    # transaction's own fields (the rules may read them) + score.
    rows = with_transaction_fields(rows, txns)
    rows, chosen = _scores(rows, model, scores, threshold)
    result = run_backtest(rule_set, rows, chosen)
    console.print(backtest_table(result))
    if as_json:
        print_json(
            {
                "command": "rules backtest",
                "period": {"start": split.test_start.isoformat(), "days": split.test_days},
                **result.as_dict(),
                "input": inputs.exclusions,
            }
        )
