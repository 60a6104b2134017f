"""`fraudstream train | evaluate | score-file | promote`: wiring around model/ and the registry."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from fraudstream.cli.inputs import (
    Inputs,
    JsonOpt,
    LabelOpt,
    SetOpt,
    StrictOpt,
    TxnOpt,
    json_mode,
    print_json,
    progress_bar,
    read_inputs,
    read_table,
)
from fraudstream.settings import load_settings

# The model stack (pandas, scikit-learn, XGBoost, MLflow) takes seconds to import: it is
# imported inside the commands that use it, so `fraudstream --help` and the platform
# commands start at once.
if TYPE_CHECKING:
    import pandas as pd

    from fraudstream.adapters.registry import LoadedModel
    from fraudstream.model.experiment import Experiment
    from fraudstream.model.split import TimeSplit

__all__ = ["read_table", "train_app"]

train_app = typer.Typer(no_args_is_help=True)
console = Console()

ModelOpt = Annotated[str, typer.Option("--model", help="champion, challenger, a version or URI.")]
StartOpt = Annotated[str | None, typer.Option(help="First day (YYYY-MM-DD, UTC).")]
DaysOpt = Annotated[int | None, typer.Option(help="Number of days from --start.")]
# Headline figures of a report, in the order tables and JSON summaries show them.
HEADLINE = (
    "rows",
    "frauds",
    "auc_roc",
    "average_precision",
    "card_precision_at_100",
    "threshold",
    "precision",
    "recall",
    "f2",
    "alert_rate",
    "ece",
    "ece_alert_band",
)


def _git_sha() -> str:
    """The checkout's commit, or "unknown" outside a checkout or without git (an image)."""
    try:
        found = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=False
        )
    except OSError:
        return "unknown"
    return found.stdout.strip() or "unknown"


def _progress() -> Progress:
    return progress_bar(console)


def replay_features(txns: pd.DataFrame, labels: pd.DataFrame | None) -> pd.DataFrame:
    """Feature rows of every transaction by the offline replay, with a progress bar."""
    from fraudstream.features.replay import build_features

    with _progress() as bar:
        task = bar.add_task("features", total=len(txns))
        return build_features(txns, labels, on_progress=lambda n: bar.update(task, completed=n))


def with_transaction_fields(rows: pd.DataFrame, txns: pd.DataFrame) -> pd.DataFrame:
    """Feature rows joined with their transaction's own fields (the rules may read them), in
    the rows' order: transaction_id, event_time, card_id, features, ... + the fields."""
    fields = txns.drop(columns=[c for c in ("event_time", "card_id") if c in txns.columns])
    return rows.merge(fields, on="transaction_id", how="left", suffixes=("", "_txn"))


def _show(reports: dict[str, dict[str, Any]]) -> None:
    table = Table("metric", *reports)
    for key in HEADLINE:
        table.add_row(
            key,
            *(
                f"{r[key]:.4f}" if isinstance(r[key], float) else str(r[key])
                for r in reports.values()
            ),
        )
    console.print(table)
    for name, report in reports.items():
        if report.get("recall_per_scenario"):
            console.print(f"{name} recall per scenario: {report['recall_per_scenario']}")


def headline(report: dict[str, Any]) -> dict[str, Any]:
    """The report's headline figures (for JSON summaries)."""
    return {key: report[key] for key in HEADLINE if key in report}


def _write_json(path: Path, content: dict[str, Any]) -> None:
    path.write_text(json.dumps(content, indent=2, default=str))
    console.print(f"report -> {path}")


def holdout_window(inputs: Inputs, start: str | None, days: int | None) -> TimeSplit:
    """The evaluation period: ``--start``/``--days``, else the data's last ``days`` or all of it.

    With a training set and no ``--start``, the period is the last ``days`` (7 by
    default) before the set's window end: the test period of a default training split.
    """
    import numpy as np
    import pandas as pd

    from fraudstream.model.split import DAY, TimeSplit

    frame = inputs.transactions
    end = inputs.window_end
    if start is None and end is not None:
        span = days or 7
        return TimeSplit(end.floor("D") - span * DAY, 0, 0, span)
    first = pd.Timestamp(start, tz="UTC") if start else frame["event_time"].min().floor("D")
    span = days or int(np.ceil((frame["event_time"].max() - first) / pd.Timedelta(days=1))) + 1
    return TimeSplit(first, 0, 0, span)


@train_app.command()
def train(
    transactions: TxnOpt = None,
    labels: LabelOpt = None,
    training_set: SetOpt = None,
    train_start: StartOpt = None,
    train_days: Annotated[
        int | None,
        typer.Option(help="Training days [default: 21; with --training-set, the rest of it]."),
    ] = None,
    delay_days: int = 7,
    test_days: int = 7,
    candidates: Annotated[int, typer.Option(help="Search candidates (first imbalance arm).")] = 20,
    halving: Annotated[bool, typer.Option(help="Successive halving over rows.")] = False,
    smote: Annotated[bool, typer.Option(help="Run the SMOTE arm of the ablation.")] = True,
    final_fit: Annotated[
        str,
        typer.Option(
            help="What the registered model is fitted on with the chosen parameters: "
            "'training-period' (the training rows, labels known at the test start) or 'recent' "
            "(every row before the test period, labels known at its end; docs/model.md)."
        ),
    ] = "training-period",
    register: Annotated[bool, typer.Option(help="Log to MLflow and register.")] = True,
    report: Annotated[Path | None, typer.Option(help="Also write the report as JSON.")] = None,
    unsupervised: Annotated[
        bool, typer.Option(help="Cold start: IsolationForest, no labels needed.")
    ] = False,
    alert_rate: Annotated[
        float, typer.Option(help="Target alert rate of the unsupervised threshold.")
    ] = 0.005,
    run_key: Annotated[
        str | None,
        typer.Option(
            help="Idempotency key: when a version was registered under it, reuse that version "
            "(@challenger again) instead of training."
        ),
    ] = None,
    strict: StrictOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Train XGBoost on a time-ordered split, evaluate it with baselines, register a challenger.

    With --unsupervised, fit an anomaly model on the same features instead (labels optional).
    The split starts at --train-start, else at the first day of the data; with
    --training-set it fills the set's window (the test period ends at its end).
    With --run-key, a retried request (the same key) trains nothing: the version the
    first attempt registered becomes @challenger again and the same summary is printed.
    Transactions the stream would refuse are excluded (counted per reason in the
    report's and the MLflow run's lineage), or with --strict stop the command.
    """
    import pandas as pd

    from fraudstream.model.coldstart import run_anomaly_experiment
    from fraudstream.model.split import TimeSplit, default_split
    from fraudstream.services.models import register_experiment

    json_mode(console, as_json)
    if final_fit not in ("recent", "training-period"):
        raise typer.BadParameter(
            f"{final_fit!r}: choose 'recent' or 'training-period'", param_hint="--final-fit"
        )
    if run_key is not None and _reused(run_key, register, as_json):
        return
    inputs = read_inputs(transactions, labels, training_set, not unsupervised, strict, console)
    txns, labs = inputs.transactions, inputs.labels
    if inputs.manifest and not train_start:
        # The split fills the window: its test period ends where the window ends.
        train_start = str(inputs.manifest["window_start"])[:10]
        if train_days is None:
            train_days = int(inputs.manifest["window_days"]) - delay_days - test_days
    days = train_days if train_days is not None else 21
    if days < 1:
        raise typer.BadParameter(
            f"no training days left: the window is shorter than --delay-days {delay_days} "
            f"+ --test-days {test_days}",
            param_hint="--train-days",
        )
    split = default_split(txns["event_time"], days, delay_days, test_days)
    if train_start:
        split = TimeSplit(pd.Timestamp(train_start, tz="UTC"), days, delay_days, test_days)
    if unsupervised:
        with _progress() as bar:
            rows = bar.add_task("features", total=len(txns))
            experiment = run_anomaly_experiment(
                txns, labs, split, alert_rate, on_rows=lambda n: bar.update(rows, completed=n)
            )
    else:
        assert labs is not None
        experiment = _supervised(txns, labs, split, candidates, halving, smote, final_fit)
    experiment.lineage.update(inputs.exclusions)
    if inputs.manifest:
        experiment.lineage["training_set"] = training_set
        experiment.lineage["training_set_as_of"] = inputs.manifest["as_of"]
    if experiment.reports:
        _show(experiment.reports)
    console.print(
        f"{experiment.kind}: threshold {experiment.threshold:.4f}; "
        + ", ".join(f"{k} {v:.4f}" for k, v in experiment.fit_metrics.items())
    )
    if report:
        _write_json(
            report,
            {
                "reports": experiment.reports,
                "metrics": experiment.metrics,
                "lineage": experiment.lineage,
            },
        )
    run_id, version = None, None
    settings = load_settings()
    # What --json prints besides the registration; logged with the run for keyed retries.
    body = json.loads(
        json.dumps(
            {
                "model_kind": experiment.kind,
                "threshold": experiment.threshold,
                "metrics": {
                    **experiment.fit_metrics,
                    **{
                        name: headline(scorer_report)
                        for name, scorer_report in experiment.reports.items()
                    },
                },
                "lineage": experiment.lineage,
            },
            default=str,
        )
    )
    if register:
        # MLflow prints run links on stdout; with --json stdout is the summary's alone.
        with contextlib.redirect_stdout(sys.stderr if as_json else sys.stdout):
            run_id, version = register_experiment(
                settings, experiment, _git_sha(), run_key=run_key, summary=body
            )
        console.print(
            f"registered {settings.mlflow.model_name} version {version} "
            f"as @challenger (run {run_id})"
        )
    if as_json:
        _print_train_json(body, run_id, version, register, run_key, reused=False)


def _reused(run_key: str, register: bool, as_json: bool) -> bool:
    """True when a version is already registered under ``run_key`` (and is @challenger again).

    Checked before the inputs are read: a retried task costs a registry lookup, not a
    training. A version the first attempt registered but left untagged, without the alias
    or unrecorded (it died half way) is finished here, the same way.
    """
    from fraudstream.adapters import registry

    if not register:
        raise typer.BadParameter(
            "a run key names a registered version: drop --no-register or --run-key",
            param_hint="--run-key",
        )
    try:
        registry.check_run_key(run_key)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--run-key") from None
    settings = load_settings()
    keyed = registry.registered_for_run_key(settings, run_key)
    if keyed is None:
        return False
    with contextlib.redirect_stdout(sys.stderr if as_json else sys.stdout):
        body = registry.adopt_keyed(settings, keyed, run_key)
    console.print(
        f"run key {run_key} already registered {settings.mlflow.model_name} version "
        f"{keyed.version} (run {keyed.run_id}): reused as @challenger, nothing trained",
        soft_wrap=True,
    )
    if as_json:
        _print_train_json(body, keyed.run_id, keyed.version, True, run_key, reused=True)
    return True


def _print_train_json(
    body: dict[str, Any],
    run_id: str | None,
    version: str | None,
    registered: bool,
    run_key: str | None,
    reused: bool,
) -> None:
    print_json(
        {
            "command": "train",
            "model_name": load_settings().mlflow.model_name,
            "model_kind": body.get("model_kind"),
            "run_id": run_id,
            "version": version,
            "alias": "challenger" if registered else None,
            "threshold": body.get("threshold"),
            "metrics": body.get("metrics", {}),
            "lineage": body.get("lineage", {}),
            "run_key": run_key,
            "reused": reused,
            "decision": None,
        }
    )


def _supervised(
    txns: pd.DataFrame,
    labs: pd.DataFrame,
    split: TimeSplit,
    candidates: int,
    halving: bool,
    smote: bool,
    final_fit: str = "training-period",
) -> Experiment:
    from fraudstream.model.experiment import FINAL_FITS, run_experiment

    arms: tuple[Any, ...] = ("scale_pos_weight", "smote") if smote else ("scale_pos_weight",)
    with _progress() as bar:
        rows = bar.add_task("features", total=len(txns))
        stage = bar.add_task("training", total=None)
        experiment = run_experiment(
            txns,
            labs,
            split,
            candidates,
            halving=halving,
            arms=arms,
            progress=lambda msg: bar.update(stage, description=msg),
            on_rows=lambda n: bar.update(rows, completed=n),
            final_fit=next(f for f in FINAL_FITS if f == final_fit),
        )
        bar.update(stage, total=1, completed=1, description="done")
    return experiment


def holdout_report(
    ref: str, txns: pd.DataFrame, labs: pd.DataFrame, split: TimeSplit
) -> tuple[LoadedModel, dict[str, dict[str, Any]]]:
    """A registered model and the rules baseline on the holdout ``split`` (its test period)."""
    loaded, reports, _ = holdout_scored(ref, txns, labs, split)
    return loaded, reports


def holdout_scored(
    ref: str, txns: pd.DataFrame, labs: pd.DataFrame, split: TimeSplit
) -> tuple[LoadedModel, dict[str, dict[str, Any]], pd.DataFrame]:
    """``holdout_report``'s model and reports, and the holdout rows they were computed on
    with the model's ``score`` (transaction_id, event_time, card_id, features, is_fraud, ...,
    score)."""
    from fraudstream.adapters import registry
    from fraudstream.features.replay import attach_labels
    from fraudstream.model.baselines import rules_score
    from fraudstream.model.experiment import scores_of
    from fraudstream.model.metrics import evaluate as evaluate_scores
    from fraudstream.model.split import holdout_rows

    loaded = registry.load_model(load_settings(), ref)
    rows = attach_labels(holdout_rows(replay_features(txns, labs), labs, split), labs)
    scores = scores_of(loaded.model, rows)
    reports = {
        f"model v{loaded.version}": evaluate_scores(rows, scores, loaded.threshold),
        "rules": evaluate_scores(rows, rules_score(rows), 0.3),
    }
    return loaded, reports, rows.assign(score=scores)


@train_app.command()
def evaluate(
    model: ModelOpt,
    transactions: TxnOpt = None,
    labels: LabelOpt = None,
    training_set: SetOpt = None,
    start: StartOpt = None,
    days: DaysOpt = None,
    report: Annotated[Path | None, typer.Option(help="Also write the report as JSON.")] = None,
    strict: StrictOpt = False,
    as_json: JsonOpt = False,
    rules: Annotated[
        Path | None,
        typer.Option(
            "--rules",
            help="A rule set file: also report what model + rules decide on the period "
            "(docs/rules.md).",
        ),
    ] = None,
) -> None:
    """Evaluate a registered model on a labelled period, beside the rules baseline.

    Transactions the stream would refuse are excluded and reported (--strict: stop).
    With --rules, the rule set decides beside the model on the same rows, as `POST /score`
    and `score-file --rules` do: the decisions per outcome, the set's alerts (review and
    decline) against the labels, the model alone at its threshold and at the same alert
    count, and every rule's hits and precision (`rules backtest`'s figures).
    """
    from fraudstream.rules.backtest import Backtest
    from fraudstream.rules.ruleset import load_rule_set

    json_mode(console, as_json)
    rule_set = load_rule_set(rules) if rules is not None else None  # first: costs no replay
    inputs = read_inputs(transactions, labels, training_set, True, strict, console)
    assert inputs.labels is not None
    split = holdout_window(inputs, start, days)
    loaded, reports, rows = holdout_scored(model, inputs.transactions, inputs.labels, split)
    _show(reports)
    decided: Backtest | None = None
    if rule_set is not None:
        from fraudstream.cli.backtest_table import backtest_table
        from fraudstream.rules.backtest import backtest

        frame = with_transaction_fields(rows, inputs.transactions)
        decided = backtest(rule_set, frame, loaded.threshold)
        console.print(backtest_table(decided))
    if report:
        _write_json(
            report, reports if decided is None else {**reports, "rule_set": decided.as_dict()}
        )
    if as_json:
        print_json(
            {
                "command": "evaluate",
                "model_name": load_settings().mlflow.model_name,
                "version": loaded.version,
                "holdout": {"start": split.test_start.isoformat(), "days": split.test_days},
                "metrics": {name: headline(r) for name, r in reports.items()},
                "input": inputs.exclusions,
                **({} if decided is None else {"rule_set": decided.as_dict()}),
                "decision": None,
            }
        )


@train_app.command("score-file")
def score_file(
    model: ModelOpt,
    out: Annotated[Path, typer.Option()],
    transactions: TxnOpt = None,
    labels: LabelOpt = None,
    training_set: SetOpt = None,
    strict: StrictOpt = False,
    as_json: JsonOpt = False,
    rules: Annotated[
        Path | None,
        typer.Option(
            "--rules",
            help="A rule set file: also write outcome, reason, fired_rules, rules_version.",
        ),
    ] = None,
) -> None:
    """Write transaction_id, score, decision for every transaction of a file.

    Features come from the same replay as training; labels count only once known.
    Transactions the stream would refuse (and dead-letter) are neither scored nor
    fed to the features: they are reported per reason, or with --strict stop the command.
    With --rules, the rule set decides beside the model as `POST /score` does
    (docs/rules.md): outcome (approve, review, decline), the deciding rule or `model`,
    every fired rule (a list; in CSV joined by ';') and the set's version.
    """
    import numpy as np
    import pandas as pd

    from fraudstream.adapters import registry
    from fraudstream.model.experiment import scores_of
    from fraudstream.rules.decision import decide
    from fraudstream.rules.ruleset import load_rule_set

    json_mode(console, as_json)
    rule_set = load_rule_set(rules) if rules is not None else None  # first: costs no replay
    inputs = read_inputs(transactions, labels, training_set, False, strict, console)
    loaded = registry.load_model(load_settings(), model)
    rows = replay_features(inputs.transactions, inputs.labels)
    scores = scores_of(loaded.model, rows)
    result = pd.DataFrame(
        {
            "transaction_id": rows["transaction_id"],
            "score": scores,
            "decision": np.where(scores >= loaded.threshold, "alert", "pass"),
        }
    )
    if rule_set is not None:
        frame = with_transaction_fields(rows, inputs.transactions).assign(score=scores)
        decided = decide(rule_set, frame, loaded.threshold)
        fired = decided.fired_lists()
        result = result.assign(
            outcome=decided.decision,
            reason=decided.reason,
            fired_rules=[";".join(f) for f in fired] if out.suffix == ".csv" else fired,
            rules_version=decided.version,
        )
    if out.suffix == ".csv":
        result.to_csv(out, index=False)
    else:
        result.to_parquet(out, index=False)
    alerts = int((scores >= loaded.threshold).sum())
    console.print(
        f"{len(result):,} scores -> {out} ({alerts:,} alerts at threshold "
        f"{loaded.threshold:.4f}, model v{loaded.version})"
    )
    if as_json:
        print_json(
            {
                "command": "score-file",
                "model_name": load_settings().mlflow.model_name,
                "version": loaded.version,
                "out": str(out),
                "scored": len(result),
                "alerts": alerts,
                "rules_version": rule_set.version if rule_set is not None else None,
                "outcomes": (
                    {k: int(v) for k, v in result["outcome"].value_counts().items()}
                    if rule_set is not None
                    else None
                ),
                "input": inputs.exclusions,
            }
        )
