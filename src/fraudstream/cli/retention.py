"""`fraudstream retention`: keep PostgreSQL's hot window (``services.retention``)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Annotated

import typer
from rich.console import Console

from fraudstream.cli.inputs import print_json, utc_time
from fraudstream.settings import load_settings

retention_app = typer.Typer()
console = Console()


def _day(value: str | None) -> date:
    return utc_time(value, "--today").date() if value else datetime.now(UTC).date()


@retention_app.command()
def retention(
    today: Annotated[
        str | None,
        typer.Option(help="The UTC day counted from (YYYY-MM-DD, or an ISO time); default today."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the run as JSON.")] = False,
) -> None:
    """Drop day partitions older than the retention (FRAUDSTREAM_RETENTION_*), make the coming
    days' partitions; every drop is logged in partition_drops. Idempotent."""
    from fraudstream.services.retention import apply

    run = apply(load_settings(), _day(today))
    if as_json:
        print_json({
            "command": "retention",
            "made": run.made,
            "cutoffs": {t: d.isoformat() for t, d in run.cutoffs.items()},
            "dropped": [
                {"table": d.table, "partition": d.partition, "day": d.day.isoformat(),
                 "bytes": d.bytes, "duration_ms": round(d.duration_ms, 1)}
                for d in run.dropped
            ],
        })  # fmt: skip
        return
    for table, first in run.cutoffs.items():
        console.print(f"{table}: keeps days from {first.isoformat()}")
    for d in run.dropped:
        console.print(f"dropped {d.partition} ({d.bytes / 1e6:.1f} MB) in {d.duration_ms:.0f} ms")
    console.print(f"{len(run.dropped)} partitions dropped, {run.made} made ahead")
