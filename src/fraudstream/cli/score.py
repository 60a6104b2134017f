"""`fraudstream score`: run the streaming scorer locally (the same code the Kubernetes job runs)."""

from __future__ import annotations

import logging
import statistics
from dataclasses import replace
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from fraudstream.settings import load_settings
from fraudstream.topics import DEAD_LETTERS, FRAUD_ALERTS, FRAUD_PREDICTIONS, TRANSACTIONS

if TYPE_CHECKING:
    from fraudstream.scoring.run import RunResult

score_app = typer.Typer(no_args_is_help=True)
console = Console()


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def _summary(result: RunResult, metrics_port: int, ui_port: int) -> Table:
    report = result.report
    table = Table(title=f"scorer: {report.batches:,} micro-batches in {result.seconds:,.0f} s")
    table.add_column("")
    table.add_column("value", justify="right")
    table.add_row("transactions scored", f"{report.scored:,}")
    table.add_row("alerts", f"{report.alerts:,}")
    table.add_row("dead letters", f"{report.dead_letters:,}")
    table.add_row("late events (scored, not added to state)", f"{report.late:,}")
    if report.latencies:
        table.add_row("e2e latency p50", f"{statistics.median(report.latencies) * 1000:,.0f} ms")
        table.add_row("e2e latency p99", f"{_percentile(report.latencies, 0.99) * 1000:,.0f} ms")
    table.add_row("model versions served", ", ".join(result.model_versions) or "-")
    table.add_row("model reloads", ", ".join(f"{k} {v}" for k, v in result.reloads.items()))
    table.add_row("query restarts", f"{result.restarts:,}")
    table.add_row("checkpoint", result.checkpoint)
    table.add_row("metrics (while running)", f"http://127.0.0.1:{metrics_port}/metrics")
    table.add_row("Spark UI (while running)", f"http://127.0.0.1:{ui_port}")
    return table


@score_app.command("score")
def score(
    source: Annotated[str, typer.Option(help="Topic of canonical transactions.")] = (
        TRANSACTIONS.name
    ),
    predictions: Annotated[str, typer.Option(help="Topic for every score.")] = (
        FRAUD_PREDICTIONS.name
    ),
    alerts: Annotated[str, typer.Option(help="Topic for alerts.")] = FRAUD_ALERTS.name,
    dead_letters: Annotated[str, typer.Option(help="Topic for invalid input.")] = (
        DEAD_LETTERS.name
    ),
    checkpoint: Annotated[
        str | None,
        typer.Option(
            help="Checkpoint URI [default: s3a://<checkpoint bucket>/checkpoints/scorer]."
        ),
    ] = None,
    parquet: Annotated[
        str | None,
        typer.Option(help="Parquet URI for scored rows [default: s3a://<dataset bucket>/scored]."),
    ] = None,
    no_parquet: Annotated[
        bool, typer.Option("--no-parquet", help="Skip the Parquet copy.")
    ] = False,
    trigger: Annotated[
        float | None, typer.Option(min=0, help="Seconds between micro-batches.")
    ] = None,
    max_offsets_per_trigger: Annotated[
        int | None, typer.Option(min=1, help="Cap on records per micro-batch.")
    ] = None,
    starting_offsets: Annotated[
        str, typer.Option(help="earliest or latest: where a new checkpoint starts reading.")
    ] = "earliest",
    reload_interval: Annotated[
        float | None, typer.Option(min=0.1, help="Seconds between registry alias polls.")
    ] = None,
    shadow: Annotated[
        bool | None, typer.Option("--shadow/--no-shadow", help="Also score with @challenger.")
    ] = None,
    buckets: Annotated[
        int | None, typer.Option(min=1, help="Card buckets (fixed for a checkpoint's life).")
    ] = None,
    card_state: Annotated[
        str | None,
        typer.Option(
            help="packed or per-card: how a new checkpoint keeps card states (docs/scorer.md)."
        ),
    ] = None,
    labels: Annotated[
        str | None,
        typer.Option(help="Topic of fraud verdicts for the merchant-risk features."),
    ] = None,
    merchant_delay: Annotated[
        float | None,
        typer.Option(
            min=0,
            max=7 * 86_400,
            help="Event-time seconds a merchant bucket waits before scoring, so partitions' "
            "skew cannot reorder merchant features (0: score in the batch that brings it).",
        ),
    ] = None,
    duration: Annotated[
        float | None, typer.Option(min=1, help="Stop after this many seconds (default: run on).")
    ] = None,
    progress: Annotated[bool, typer.Option(help="Print one line per micro-batch.")] = True,
    online_store: Annotated[
        bool | None,
        typer.Option(
            "--online-store/--no-online-store",
            help="Publish each batch's card and merchant states to Redis for POST /score.",
        ),
    ] = None,
) -> None:
    """Score the transaction stream: features from Spark state, the @champion model, every sink.

    Stops after --duration, on Ctrl-C or SIGTERM, between micro-batches; a restart
    with the same --checkpoint resumes where it stopped.
    """
    from fraudstream.scoring.cards import CARD_STATE_LAYOUTS
    from fraudstream.scoring.run import progress_line, run_scorer
    from fraudstream.scoring.sinks.kafka import OutputTopics
    from fraudstream.scoring.stream import StreamOptions

    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    for noisy in ("py4j", "urllib3", "botocore", "mlflow"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    settings = load_settings()
    scorer, spark = settings.scorer, settings.spark
    if starting_offsets not in ("earliest", "latest"):
        raise typer.BadParameter("use earliest or latest", param_hint="--starting-offsets")
    if card_state is not None and card_state not in CARD_STATE_LAYOUTS:
        raise typer.BadParameter(
            f"use one of {', '.join(CARD_STATE_LAYOUTS)}", param_hint="--card-state"
        )
    updates: dict[str, Any] = {}
    if reload_interval is not None:
        updates["reload_interval_s"] = reload_interval
    if shadow is not None:
        updates["shadow"] = shadow
    if labels is not None:
        updates["labels_topic"] = labels
    if merchant_delay is not None:
        updates["merchant_delay_s"] = merchant_delay
    scorer = scorer.model_copy(update=updates)
    options = StreamOptions(
        source_topic=source,
        checkpoint=checkpoint
        or scorer.checkpoint
        or f"s3a://{settings.s3.checkpoint_bucket}/checkpoints/scorer",
        parquet_uri=None
        if no_parquet or not scorer.parquet
        else parquet or f"s3a://{settings.s3.dataset_bucket}/scored",
        buckets=buckets or scorer.buckets,
        card_state=card_state or scorer.card_state,
        decoded_cards=scorer.decoded_cards,
        trigger_s=scorer.trigger_s if trigger is None else trigger,
        starting_offsets=starting_offsets,
        max_offsets_per_trigger=max_offsets_per_trigger or scorer.max_offsets_per_trigger,
    )

    def on_batch(p: dict[str, Any], _report: Any) -> None:
        if progress and p.get("numInputRows"):
            console.print(progress_line(p), highlight=False)

    if scorer.online_store if online_store is None else online_store:
        from fraudstream.adapters.online_store import OnlineStore

        store = OnlineStore(settings.redis)
        try:
            store.ping()  # unreachable: an OnlineStoreError, whose hint names --no-online-store
        finally:
            store.close()
        options = replace(options, emit_states=True)

    console.print(
        f"scoring {source} with @{settings.mlflow.model_alias} of {settings.mlflow.model_name}; "
        f"checkpoint {options.checkpoint}; metrics on :{scorer.metrics_port}"
    )
    # Known failures (no model, a missing topic, a checkpoint of other buckets, the metrics
    # port taken, too many restarts) are one line each, from cli.errors.KNOWN.
    result = run_scorer(
        settings,
        scorer,
        spark,
        options,
        OutputTopics(predictions, alerts, dead_letters),
        duration_s=duration,
        on_batch=on_batch,
    )
    console.print(_summary(result, scorer.metrics_port, spark.ui_port))
