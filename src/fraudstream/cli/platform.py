"""`fraudstream platform ...`: run the embedded platform on this machine."""

from __future__ import annotations

import json
import subprocess
import time
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from fraudstream.platform.runtime import EmbeddedPlatform, ServiceStatus, closure
from fraudstream.platform.smoke import run_smoke
from fraudstream.settings import load_settings

platform_app = typer.Typer(
    help="Start, stop and inspect the embedded platform.", no_args_is_help=True
)
console = Console()


def _platform(with_airflow: bool | None = None) -> EmbeddedPlatform:
    return EmbeddedPlatform(load_settings(), with_airflow)


def _table(rows: list[ServiceStatus]) -> Table:
    """One row per service. Names and URLs are never cut (a user types the one into `platform
    logs SERVICE` and opens the other); the restarts column appears once a service restarted."""
    restarts = any(r.restarts and r.restarted_at for r in rows)
    table = Table(title="fraudstream platform", title_justify="left")
    table.add_column("service", no_wrap=True)
    for col in ("pid", "port", "health", *(("restarted",) if restarts else ())):
        table.add_column(col)
    table.add_column("url", overflow="fold")
    colours = {"running": "green", "unhealthy": "yellow", "stopped": "red"}
    for r in rows:
        health = f"[{colours[r.state]}]{r.state}[/]" + ("" if r.healthy else f" ({r.detail})")
        cells = [r.service, str(r.pid or "-"), ",".join(map(str, r.ports)), health]
        if restarts:
            cells.append(
                f"{r.restarts}x, last {r.restarted_at[11:19]} UTC"
                if r.restarts and r.restarted_at
                else "-"
            )
        table.add_row(*cells, r.url)
    return table


def _print_status(platform: EmbeddedPlatform, as_json: bool, only: list[str] | None = None) -> bool:
    doc = platform.status_document(only)
    if as_json:
        typer.echo(json.dumps(doc, indent=2))
        return bool(doc["healthy"])
    rows = platform.status()
    console.print(_table(rows))
    urls = doc["urls"]
    assert isinstance(urls, dict)
    console.print(f"MLflow UI:      {urls['mlflow_ui']}")
    console.print(f"MinIO console:  {urls['minio_console']}")
    console.print(f"Kafka:          {platform.settings.kafka.bootstrap}")
    console.print(f"PostgreSQL:     {platform.settings.postgres.redacted_dsn()}")
    if "airflow_ui" in urls:
        user, password = platform.airflow.login()
        login = f"(user {user}, password {password})"
        console.print(f"Airflow UI:     {urls['airflow_ui']} {login}", soft_wrap=True)
    return bool(doc["healthy"])


@platform_app.command()
def up(
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the final status as JSON.")
    ] = False,
    with_airflow: Annotated[
        bool | None,
        typer.Option(
            "--with-airflow/--without-airflow",
            help="Also start Airflow (default: FRAUDSTREAM_AIRFLOW_ENABLED).",
        ),
    ] = None,
    only: Annotated[
        str | None,
        typer.Option(
            "--only",
            metavar="SERVICES",
            help="Start only these services (comma-separated: postgres, minio, kafka, mlflow, "
            "redis, airflow) and what they need (mlflow: postgres, minio; airflow: postgres).",
        ),
    ] = None,
) -> None:
    """Start every service that is not running, wait for health, configure. Idempotent."""
    names = None if only is None else [*only.split(","), *(["airflow"] if with_airflow else [])]
    if names is not None:
        closure(names)  # an unknown name fails here, before anything starts
    platform = _platform(with_airflow)
    started = time.perf_counter()
    with console.status("starting the platform", spinner="dots") as spinner:
        platform.up(report=lambda msg: spinner.update(msg), only=names)
    if not as_json:
        console.print(f"platform up in {time.perf_counter() - started:.1f}s")
    if not _print_status(platform, as_json, names):
        raise typer.Exit(1)


@platform_app.command()
def down() -> None:
    """Stop everything `up` started; data is kept for the next `up`."""
    platform = _platform()
    problems = platform.down(report=console.print)
    for p in problems:
        console.print(f"[red]{p}[/]")
    if problems:
        raise typer.Exit(1)
    console.print("platform stopped; no platform port is listening")


@platform_app.command()
def status(
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Each service's pid, ports, health and URL; exit 1 if any is unhealthy."""
    if not _print_status(_platform(), as_json):
        raise typer.Exit(1)


@platform_app.command()
def logs(
    service: Annotated[str | None, typer.Argument(help="A service; all if omitted.")] = None,
    lines: Annotated[int, typer.Option("-n", "--lines", min=1)] = 50,
    follow: Annotated[bool, typer.Option("-f", "--follow")] = False,
) -> None:
    """Show the last lines of a service's log (or of every log)."""
    platform = _platform()
    try:
        services = [platform.service(service)] if service else platform.services
    except KeyError as exc:
        raise typer.BadParameter(str(exc.args[0]), param_hint="SERVICE") from None
    paths = [str(s.log_path) for s in services if s.log_path.is_file()]
    if not paths:
        console.print("no logs yet: run `fraudstream platform up` first")
        raise typer.Exit(1)
    argv = ["tail", "-n", str(lines), *(["-F"] if follow else []), *paths]
    raise typer.Exit(subprocess.call(argv))


@platform_app.command()
def reset(
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
) -> None:
    """Stop the platform and delete all its state: data, logs and generated credentials."""
    platform = _platform()
    if not yes:
        typer.confirm(
            f"Delete everything under {platform.home} (all topics, tables, models)?", abort=True
        )
    platform.reset()
    console.print(f"removed {platform.home}")


@platform_app.command()
def smoke(
    messages: Annotated[
        int, typer.Option(min=1, help="Records to round-trip through Kafka.")
    ] = 1000,
) -> None:
    """Round-trip a batch through Kafka and touch PostgreSQL, S3 and MLflow."""
    checks = run_smoke(load_settings(), messages)
    table = Table(title="smoke test", title_justify="left")
    for col in ("check", "result", "seconds", "detail"):
        table.add_column(col)
    for c in checks:
        table.add_row(
            c.name, "[green]ok[/]" if c.ok else "[red]FAILED[/]", f"{c.seconds:.2f}", c.detail
        )
    console.print(table)
    if not all(c.ok for c in checks):
        raise typer.Exit(1)
