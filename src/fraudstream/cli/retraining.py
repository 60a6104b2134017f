"""`fraudstream extract-training-set | promote`: the steps of retraining around `train`.

The retraining DAG runs, in order, ``extract-training-set`` (exit 4: too few
labels, skip the run), ``train --training-set URI --json`` and ``promote
--training-set URI --request-key KEY --json``. Each prints one JSON line on
stdout with ``--json``; a refused promotion is a normal outcome (exit 0) unless
``--require-promotion`` is given.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any, Literal

import typer

from fraudstream.cli.inputs import (
    JsonOpt,
    LabelOpt,
    SetOpt,
    StrictOpt,
    TxnOpt,
    json_mode,
    print_json,
    utc_time,
)
from fraudstream.cli.inputs import read_inputs as _read_inputs
from fraudstream.cli.train import DaysOpt, StartOpt, console, headline, holdout_report
from fraudstream.cli.train import holdout_window as _holdout_window
from fraudstream.settings import load_settings
from fraudstream.topics import MODEL_EVENTS

retraining_app = typer.Typer(no_args_is_help=True)

#: Exit status of `promote --require-promotion` when the gate refuses.
EXIT_REFUSED = 3


@retraining_app.command("extract-training-set")
def extract_training_set(
    as_of: Annotated[str, typer.Option(help="End of the window and label cutoff (ISO, UTC).")],
    output: Annotated[str, typer.Option(help="A directory or s3://bucket/prefix.")],
    days: Annotated[int, typer.Option(help="Days of transactions before --as-of.")] = 35,
    min_labels: Annotated[int, typer.Option(help="Fewer labels than this: exit 4.")] = 20,
    min_frauds: Annotated[int, typer.Option(help="Fewer frauds than this: exit 4.")] = 20,
    strict: StrictOpt = False,
    source: Annotated[
        Literal["auto", "postgres", "lake"],
        typer.Option(
            help="Where the transactions come from; auto: the lake when retention dropped "
            "days of the window from PostgreSQL."
        ),
    ] = "auto",
    lake: Annotated[
        str | None,
        typer.Option(help="The scorer's Parquet lake [default: s3://<dataset bucket>/scored]."),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Write the point-in-time training set of a window from PostgreSQL (or, beyond its hot
    window, the scorer's Parquet lake) under --output.

    Transactions with event_time in [as_of - days, as_of), labels with
    label_time <= as_of: transactions.parquet, labels.parquet and manifest.json.
    The same --as-of writes the same keys. Exit 4 when the window holds too few
    labels (a reason to skip training, not a failure). Rows the stream's row policy
    refuses now are left out and counted in the manifest (--strict: stop instead).
    """
    from fraudstream import training_sets
    from fraudstream.adapters.object_store import Location, LocationError
    from fraudstream.model.training_set import EXIT_TOO_FEW_LABELS, TooFewLabelsError, Window

    json_mode(console, as_json)
    window = Window(utc_time(as_of, "--as-of"), days)
    try:
        Location(output, load_settings().s3)  # a malformed URI fails before the query
    except LocationError as exc:
        raise typer.BadParameter(str(exc), param_hint="--output") from None
    try:
        content = training_sets.extract(
            load_settings(), window, output, (min_labels, min_frauds), strict, source, lake
        )
    except TooFewLabelsError as exc:
        console.print(f"[bold yellow]skipped[/]: {exc}", soft_wrap=True)
        if as_json:
            print_json({"command": "extract-training-set", "skipped": True, "reason": str(exc)})
        raise typer.Exit(EXIT_TOO_FEW_LABELS) from None
    excluded = content["row_policy"]
    if excluded["rows_excluded"]:
        reasons = ", ".join(
            f"{key.removeprefix('rows_excluded_')} {n:,}"
            for key, n in excluded.items()
            if key.startswith("rows_excluded_")
        )
        console.print(
            f"[yellow]excluded[/]: {excluded['rows_excluded']:,} transactions the row policy "
            f"refuses ({reasons})",
            soft_wrap=True,
        )
    console.print(
        f"{content['transactions']:,} transactions and {content['labels']:,} labels "
        f"({content['frauds']:,} frauds) from {content['window_start']} to "
        f"{content['window_end']} -> {output}",
        soft_wrap=True,
    )
    if as_json:
        print_json({"command": "extract-training-set", "skipped": False, "uri": output, **content})


@retraining_app.command()
def promote(
    transactions: TxnOpt = None,
    labels: LabelOpt = None,
    training_set: SetOpt = None,
    start: StartOpt = None,
    days: DaysOpt = None,
    version: Annotated[str, typer.Option(help="Version to promote.")] = "challenger",
    request_key: Annotated[
        str | None,
        typer.Option(help="Idempotency key: a retried request with the same key is a no-op."),
    ] = None,
    decided_by: Annotated[str, typer.Option(help="Who asked (recorded).")] = "cli",
    require_promotion: Annotated[
        bool, typer.Option(help="Exit 3 when the gate refuses (default: exit 0).")
    ] = False,
    override: Annotated[
        str | None,
        typer.Option(
            help="Promote even if the gate refuses, for this reason (an operator's decision, "
            "recorded with the gate's verdict): a rollback, or a fix that cannot wait."
        ),
    ] = None,
    events_topic: Annotated[str, typer.Option(help="Where alias moves are published.")] = (
        MODEL_EVENTS.name
    ),
    strict: StrictOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Move @champion to the challenger if it beats the champion on the same holdout.

    The holdout is --start/--days, else the last 7 days of --training-set, else
    all of the given data. A promotion is recorded in model_promotions and
    published on model_events; a refusal changes nothing and says why.
    --override promotes past a refusal, recording the reason beside the gate's.
    """
    from fraudstream.adapters import registry
    from fraudstream.model.gate import Decision
    from fraudstream.services.models import promote

    json_mode(console, as_json)
    settings = load_settings()
    key = request_key or str(uuid.uuid4())
    done = registry.promotion_for_key(settings, key)
    if done is not None:
        console.print(
            f"request {key} already promoted version {done.version} (by {done.decided_by}): "
            "nothing to do",
            soft_wrap=True,
        )
        _summary(
            as_json,
            key,
            done.version,
            done.previous_version,
            "already_promoted",
            done.reason,
            done.metrics,
            None,
        )
        return
    outcome = _decide(settings, (transactions, labels, training_set), start, days, version, strict)
    challenger, previous, decision, figures = outcome
    if override is not None and not decision.promote and previous != challenger.version:
        if not override.strip():
            raise typer.BadParameter("--override needs a reason (who decided, and why)")
        decision = Decision(True, f"override: {override.strip()} (the gate: {decision.reason})")
    if not decision.promote:
        console.print(
            f"[bold red]refused[/]: version {challenger.version} stays challenger: "
            f"{decision.reason}",
            soft_wrap=True,
        )
        _summary(
            as_json, key, challenger.version, previous, "refused", decision.reason, figures, None
        )
        if require_promotion:
            raise typer.Exit(EXIT_REFUSED)
        return
    promotion = registry.Promotion(
        key, challenger.version, previous, decision.reason, decided_by, figures
    )
    event = promote(settings, promotion, challenger.threshold, events_topic)
    console.print(
        f"promoted version {challenger.version} to @champion: {decision.reason}", soft_wrap=True
    )
    _summary(
        as_json, key, challenger.version, previous, "promoted", decision.reason, figures, event
    )


def _decide(
    settings: Any,
    sources: tuple[str | None, str | None, str | None],
    start: str | None,
    days: int | None,
    version: str,
    strict: bool,
) -> tuple[Any, str | None, Any, dict[str, Any]]:
    """(challenger, champion version, gate decision, figures of both) on one holdout.

    ``sources``: --transactions, --labels, --training-set.
    """
    from fraudstream.adapters import registry
    from fraudstream.model.gate import Decision, decide

    inputs = _read_inputs(*sources, True, strict, console)
    assert inputs.labels is not None
    split = _holdout_window(inputs, start, days)
    txns, labs = inputs.transactions, inputs.labels
    challenger, reports = holdout_report(version, txns, labs, split)
    figures: dict[str, Any] = {
        "holdout_start": split.test_start.isoformat(),
        "holdout_days": split.test_days,
        "challenger": headline(reports[f"model v{challenger.version}"]),
    }
    champion = registry.version_for_alias(settings, registry.CHAMPION)
    if champion == challenger.version:
        reason = f"version {champion} already is the champion"
        return challenger, champion, Decision(False, reason), figures
    champion_report = None
    if champion is not None:
        _, champion_reports = holdout_report(champion, txns, labs, split)
        champion_report = champion_reports[f"model v{champion}"]
        figures["champion"] = headline(champion_report)
    decision = decide(reports[f"model v{challenger.version}"], champion_report)
    return challenger, champion, decision, figures


def _summary(
    as_json: bool,
    key: str,
    version: str,
    previous: str | None,
    decision: str,
    reason: str,
    figures: dict[str, Any],
    event: dict[str, Any] | None,
) -> None:
    if as_json:
        print_json(
            {
                "command": "promote",
                "model_name": load_settings().mlflow.model_name,
                "request_key": key,
                "version": version,
                "previous_version": previous,
                "decision": decision,
                "promoted": decision == "promoted",
                "reason": reason,
                "metrics": figures,
                "event": event,
            }
        )
