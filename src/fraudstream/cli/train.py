"""`fraudstream train | evaluate | score-file | promote`: wiring around model/ and the registry."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from fraudstream.settings import load_settings

# The model stack (pandas, scikit-learn, XGBoost, MLflow) takes seconds to import: it is
# imported inside the commands that use it, so `fraudstream --help` and the platform
# commands start at once.
if TYPE_CHECKING:
    import pandas as pd

    from fraudstream.adapters.registry import LoadedModel
    from fraudstream.model.experiment import Experiment
    from fraudstream.model.split import TimeSplit

train_app = typer.Typer(no_args_is_help=True)
console = Console()

TxnOpt = Annotated[Path, typer.Option("--transactions", exists=True, help="Parquet or CSV.")]
LabelOpt = Annotated[Path, typer.Option("--labels", exists=True, help="Parquet or CSV.")]
ModelOpt = Annotated[str, typer.Option("--model", help="champion, challenger, a version or URI.")]
StartOpt = Annotated[str | None, typer.Option(help="First day (YYYY-MM-DD, UTC).")]
DaysOpt = Annotated[int | None, typer.Option(help="Number of days from --start.")]


def read_table(path: Path) -> pd.DataFrame:
    """A Parquet or CSV file; timestamp columns become tz-aware UTC."""
    import pandas as pd

    frame = pd.read_csv(path) if path.suffix == ".csv" else pd.read_parquet(path)
    for column in ("event_time", "label_time"):
        if column in frame and not isinstance(frame[column].dtype, pd.DatetimeTZDtype):
            frame[column] = pd.to_datetime(frame[column], utc=True)
    return frame


def _git_sha() -> str:
    found = subprocess.run(
        ["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=False
    )
    return found.stdout.strip() or "unknown"


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
    )


def _features(txns: pd.DataFrame, labels: pd.DataFrame | None) -> pd.DataFrame:
    from fraudstream.features.replay import build_features

    with _progress() as bar:
        task = bar.add_task("features", total=len(txns))
        return build_features(txns, labels, on_progress=lambda n: bar.update(task, completed=n))


def _show(reports: dict[str, dict[str, Any]]) -> None:
    keys = [
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
    ]
    table = Table("metric", *reports)
    for key in keys:
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


def _write_json(path: Path, content: dict[str, Any]) -> None:
    path.write_text(json.dumps(content, indent=2, default=str))
    console.print(f"report -> {path}")


def _window(frame: pd.DataFrame, start: str | None, days: int | None) -> TimeSplit:
    import numpy as np
    import pandas as pd

    from fraudstream.model.split import TimeSplit

    first = pd.Timestamp(start, tz="UTC") if start else frame["event_time"].min().floor("D")
    span = days or int(np.ceil((frame["event_time"].max() - first) / pd.Timedelta(days=1))) + 1
    return TimeSplit(first, 0, 0, span)


@train_app.command()
def train(
    transactions: TxnOpt,
    labels: Annotated[
        Path | None, typer.Option(exists=True, help="Parquet or CSV; optional with --unsupervised.")
    ] = None,
    train_start: StartOpt = None,
    train_days: int = 21,
    delay_days: int = 7,
    test_days: int = 7,
    candidates: Annotated[int, typer.Option(help="Search candidates per imbalance arm.")] = 20,
    halving: Annotated[bool, typer.Option(help="Successive halving over rows.")] = False,
    smote: Annotated[bool, typer.Option(help="Run the SMOTE arm of the ablation.")] = True,
    register: Annotated[bool, typer.Option(help="Log to MLflow and register.")] = True,
    report: Annotated[Path | None, typer.Option(help="Also write the report as JSON.")] = None,
    unsupervised: Annotated[
        bool, typer.Option(help="Cold start: IsolationForest, no labels needed.")
    ] = False,
    alert_rate: Annotated[
        float, typer.Option(help="Target alert rate of the unsupervised threshold.")
    ] = 0.005,
) -> None:
    """Train XGBoost on a time-ordered split, evaluate it with baselines, register a challenger.

    With --unsupervised, fit an anomaly model on the same features instead (labels optional).
    """
    import pandas as pd

    from fraudstream.adapters import registry
    from fraudstream.model.coldstart import run_anomaly_experiment
    from fraudstream.model.split import TimeSplit, default_split

    if labels is None and not unsupervised:
        raise typer.BadParameter(
            "--labels is required (or use --unsupervised)", param_hint="--labels"
        )
    txns = read_table(transactions)
    labs = read_table(labels) if labels else None
    split = default_split(txns["event_time"], train_days, delay_days, test_days)
    if train_start:
        split = TimeSplit(pd.Timestamp(train_start, tz="UTC"), train_days, delay_days, test_days)
    if unsupervised:
        with _progress() as bar:
            rows = bar.add_task("features", total=len(txns))
            experiment = run_anomaly_experiment(
                txns, labs, split, alert_rate, on_rows=lambda n: bar.update(rows, completed=n)
            )
    else:
        assert labs is not None
        experiment = _supervised(txns, labs, split, candidates, halving, smote)
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
    if register:
        settings = load_settings()
        run_id, version = registry.log_experiment(settings, experiment, _git_sha())
        console.print(
            f"registered {settings.mlflow.model_name} version {version} "
            f"as @challenger (run {run_id})"
        )


def _supervised(
    txns: pd.DataFrame,
    labs: pd.DataFrame,
    split: TimeSplit,
    candidates: int,
    halving: bool,
    smote: bool,
) -> Experiment:
    from fraudstream.model.experiment import run_experiment

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
        )
        bar.update(stage, total=1, completed=1, description="done")
    return experiment


def _holdout_report(
    ref: str, txns: pd.DataFrame, labs: pd.DataFrame, split: TimeSplit
) -> tuple[LoadedModel, dict[str, dict[str, Any]]]:
    from fraudstream.adapters import registry
    from fraudstream.features.replay import attach_labels
    from fraudstream.model.baselines import rules_score
    from fraudstream.model.experiment import scores_of
    from fraudstream.model.metrics import evaluate as evaluate_scores
    from fraudstream.model.split import holdout_rows

    loaded = registry.load_model(load_settings(), ref)
    rows = attach_labels(holdout_rows(_features(txns, labs), labs, split), labs)
    return loaded, {
        f"model v{loaded.version}": evaluate_scores(
            rows, scores_of(loaded.model, rows), loaded.threshold
        ),
        "rules": evaluate_scores(rows, rules_score(rows), 0.3),
    }


@train_app.command()
def evaluate(
    model: ModelOpt,
    transactions: TxnOpt,
    labels: LabelOpt,
    start: StartOpt = None,
    days: DaysOpt = None,
    report: Annotated[Path | None, typer.Option(help="Also write the report as JSON.")] = None,
) -> None:
    """Evaluate a registered model on a labelled period, beside the rules baseline."""
    txns, labs = read_table(transactions), read_table(labels)
    _, reports = _holdout_report(model, txns, labs, _window(txns, start, days))
    _show(reports)
    if report:
        _write_json(report, reports)


@train_app.command("score-file")
def score_file(
    model: ModelOpt,
    transactions: TxnOpt,
    out: Annotated[Path, typer.Option()],
    labels: Annotated[Path | None, typer.Option(exists=True)] = None,
) -> None:
    """Write transaction_id, score, decision for every transaction of a file.

    Features come from the same replay as training; labels count only once known.
    """
    import numpy as np
    import pandas as pd

    from fraudstream.adapters import registry
    from fraudstream.model.experiment import scores_of

    loaded = registry.load_model(load_settings(), model)
    txns = read_table(transactions)
    rows = _features(txns, read_table(labels) if labels else None)
    scores = scores_of(loaded.model, rows)
    result = pd.DataFrame(
        {
            "transaction_id": rows["transaction_id"],
            "score": scores,
            "decision": np.where(scores >= loaded.threshold, "alert", "pass"),
        }
    )
    if out.suffix == ".csv":
        result.to_csv(out, index=False)
    else:
        result.to_parquet(out, index=False)
    console.print(
        f"{len(result):,} scores -> {out} ({int((scores >= loaded.threshold).sum()):,} "
        f"alerts at threshold {loaded.threshold:.4f}, model v{loaded.version})"
    )


@train_app.command()
def promote(
    transactions: TxnOpt,
    labels: LabelOpt,
    start: StartOpt = None,
    days: DaysOpt = None,
    version: Annotated[str, typer.Option(help="Version to promote.")] = "challenger",
) -> None:
    """Move @champion to the challenger if it beats the champion on the same holdout."""
    from fraudstream.adapters import registry
    from fraudstream.model.gate import decide

    settings = load_settings()
    txns, labs = read_table(transactions), read_table(labels)
    split = _window(txns, start, days)
    challenger, reports = _holdout_report(version, txns, labs, split)
    champion_version = registry.version_for_alias(settings, registry.CHAMPION)
    champion_report = None
    if champion_version is not None:
        _, champion_reports = _holdout_report(champion_version, txns, labs, split)
        champion_report = champion_reports[f"model v{champion_version}"]
    decision = decide(reports[f"model v{challenger.version}"], champion_report)
    if not decision.promote:
        console.print(
            f"[bold red]refused[/]: version {challenger.version} stays challenger: "
            f"{decision.reason}",
            soft_wrap=True,
        )
        raise typer.Exit(3)
    registry.set_champion(settings, challenger.version, decision.reason)
    console.print(
        f"promoted version {challenger.version} to @champion: {decision.reason}", soft_wrap=True
    )
