"""`fraudstream demo`: the whole pipeline, bounded; wiring around ``fraudstream.demo``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from fraudstream.settings import load_settings

if TYPE_CHECKING:
    from fraudstream.demo import Summary
    from fraudstream.settings import Settings

demo_app = typer.Typer(no_args_is_help=True)
console = Console()


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f} ms"


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def _summary(summary: Summary, settings: Settings, airflow: bool) -> Table:
    from fraudstream.demo import SUMMARY_WARMUP_S

    table = Table(title="fraudstream demo: summary", show_header=False)
    table.add_column(style="bold")
    table.add_column()
    table.add_row("transactions scored", f"{summary.scored:,} ({summary.rate:,.1f}/s)")
    table.add_row(
        "end-to-end p50 / p99, whole run",
        f"{_ms(summary.p50_ms)} / {_ms(summary.p99_ms)}",
    )
    if summary.warm_p99_ms is not None:
        table.add_row(
            f"end-to-end p50 / p99, after {SUMMARY_WARMUP_S} s",
            f"{_ms(summary.warm_p50_ms)} / {_ms(summary.warm_p99_ms)}",
        )
    table.add_row("alerts", f"{summary.alerts:,}")
    table.add_row("alert precision (generator's truth)", _pct(summary.precision))
    table.add_row(
        "fraud recall (generator's truth)",
        f"{_pct(summary.recall)} of {summary.frauds_sent:,} frauds sent",
    )
    table.add_row("labels ingested", f"{summary.labels:,}")
    table.add_row("model versions", ", ".join(summary.models) or "-")
    api = settings.api
    table.add_row("dashboard (`fraudstream serve`)", f"http://{api.host}:{api.port}/dashboard/")
    table.add_row("MLflow", settings.mlflow.uri)
    table.add_row("MinIO console", f"http://{settings.s3.host}:{settings.s3.console_port}")
    if airflow:
        table.add_row("Airflow", f"{settings.airflow.url}  (login: make status)")
    return table


@demo_app.command("demo")
def demo(
    duration: Annotated[
        float, typer.Option(min=10, help="Seconds of live traffic (DURATION= in `make demo`).")
    ] = 180.0,
    rate: Annotated[float, typer.Option(min=1, help="Live transactions per second.")] = 50.0,
    airflow: Annotated[
        bool, typer.Option(help="Also start Airflow (the retraining and monitoring DAGs).")
    ] = True,
    candidates: Annotated[int, typer.Option(min=1, help="Search candidates when training.")] = 2,
    retrain: Annotated[
        bool,
        typer.Option(help="Train and gate a challenger even when a champion is already serving."),
    ] = False,
) -> None:
    """Run the whole pipeline on the embedded platform, then stop what it started.

    Platform up, a generated history, train and promote (when no champion serves yet, or with
    --retrain); then the scorer, label ingestion, the API
    and a live generator for DURATION seconds, watched live; then a summary with the URLs.

    The platform keeps running afterwards: `fraudstream platform down` stops it.
    """
    from fraudstream.demo import Demo, DemoOptions, terminate_as_interrupt

    settings = load_settings()
    options = DemoOptions(
        duration_s=duration, rate=rate, airflow=airflow, candidates=candidates, retrain=retrain
    )
    runner = Demo(settings, options, console)
    with terminate_as_interrupt():
        summary = runner.run()
    console.print(_summary(summary, settings, airflow))
    console.print(
        "The platform keeps running: `make status` shows it, `make down` stops it, "
        "`.venv/bin/fraudstream serve` brings the dashboard back."
    )
