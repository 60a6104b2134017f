"""`fraudstream monitor | monitor-gate`: drift and quality of the champion, one window at a time.

The hourly monitoring DAG runs ``monitor`` for its data interval, then ``monitor-gate``,
whose exit code tells Airflow whether to trigger retraining (99 is Airflow's "skip").
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from fraudstream.cli.errors import MONITORING_ERROR_EXIT_CODE
from fraudstream.cli.inputs import utc_time
from fraudstream.settings import load_settings

monitor_app = typer.Typer(no_args_is_help=True)
console = Console()
stderr = Console(stderr=True)

NO_BREACH_EXIT_CODE = 99
"""``monitor-gate`` exit code when nothing breached: the default ``skip_on_exit_code`` of
Airflow's BashOperator, and the one the DAG gives KubernetesPodOperator."""


WindowEnd = Annotated[
    str, typer.Option("--window-end", help="End of the window (ISO 8601, UTC; exclusive).")
]


def _table(summary: dict[str, object], rows: list[tuple[str, float | None, bool]]) -> Table:
    table = Table("metric", "value", "breached", title=f"monitoring {summary['window_end']}")
    for name, value, breached in rows:
        shown = "-" if value is None else f"{value:.4f}"
        table.add_row(name, shown, "[red]yes[/]" if breached else "no")
    return table


@monitor_app.command()
def monitor(
    window_end: WindowEnd,
    window_hours: Annotated[float, typer.Option(min=0.01, help="Drift window length.")] = 1.0,
    psi_threshold: Annotated[float, typer.Option(min=0.0, help="PSI above which to alert.")] = 0.2,
    max_alert_rate: Annotated[float, typer.Option(min=0.0, max=1.0)] = 0.05,
    min_average_precision: Annotated[float, typer.Option(min=0.0, max=1.0)] = 0.2,
    min_rows: Annotated[int, typer.Option(min=1, help="Rows below which nothing breaches.")] = 200,
    label_lag_days: Annotated[
        float, typer.Option(min=0.0, help="Age at which a transaction's labels count as known.")
    ] = 7.0,
    performance_days: Annotated[
        float, typer.Option(min=0.01, help="Days of matured transactions for AP and CP@100.")
    ] = 7.0,
    metrics_file: Annotated[
        Path | None, typer.Option(help="Also write Prometheus metrics to this file.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON summary line.")] = False,
) -> None:
    """PSI of every feature and of the score, alert rate, AP and CP@100; stored in Postgres.

    Idempotent: a window's rows in monitoring_metrics are replaced when it is run again.
    """
    from fraudstream.monitoring.exposition import render
    from fraudstream.monitoring.run import monitor_window
    from fraudstream.monitoring.window import Thresholds

    limits = Thresholds(
        psi=psi_threshold,
        max_alert_rate=max_alert_rate,
        min_average_precision=min_average_precision,
        min_rows=min_rows,
    )
    end = utc_time(window_end, "--window-end")
    # A MonitoringError exits with MONITORING_ERROR_EXIT_CODE (its entry in cli.errors.KNOWN).
    run = monitor_window(
        load_settings(), end, window_hours, limits, label_lag_days, performance_days
    )
    if metrics_file is not None:
        tmp = metrics_file.with_suffix(".tmp")
        tmp.write_text(render([run]))
        tmp.replace(metrics_file)
    summary = run.summary()
    if as_json:
        typer.echo(json.dumps(summary))
        return
    console.print(_table(summary, [(m.metric, m.value, m.breached) for m in run.metrics]))
    verdict = f"[red]breached: {', '.join(run.breaches)}[/]" if run.breaches else "no breach"
    console.print(f"{run.model_name} v{run.model_version}: {verdict}")


@monitor_app.command("monitor-gate")
def monitor_gate(window_end: WindowEnd) -> None:
    """Exit 0 when the stored window crossed a threshold, 99 when it did not.

    Reads what `fraudstream monitor` stored for the window; a window never monitored is an
    error (exit 2), so a gate cannot pass on missing results.
    """
    from fraudstream.monitoring.store import stored_metrics

    end = utc_time(window_end, "--window-end")
    rows = stored_metrics(load_settings(), end)
    if not rows:
        stderr.print(
            f"[bold red]error (monitoring):[/] no results stored for the window ending "
            f"{end.isoformat()}: run `fraudstream monitor --window-end {end.isoformat()}` first",
            highlight=False,
        )
        raise typer.Exit(MONITORING_ERROR_EXIT_CODE)
    breaches = [m.metric for _, _, m in rows if m.breached]
    if not breaches:
        console.print(f"window ending {end.isoformat()}: no threshold crossed")
        raise typer.Exit(NO_BREACH_EXIT_CODE)
    console.print(f"window ending {end.isoformat()}: breached {', '.join(breaches)}")
