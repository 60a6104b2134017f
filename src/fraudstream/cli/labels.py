"""`fraudstream ingest-labels`: wiring around ``services.ingest.LabelIngest``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from fraudstream.settings import load_settings
from fraudstream.topics import DEAD_LETTERS, TRANSACTION_LABELS

if TYPE_CHECKING:
    from fraudstream.services.ingest import IngestReport

labels_app = typer.Typer(no_args_is_help=True)
console = Console()


def _summary(source: str, report: IngestReport) -> Table:
    table = Table(title=f"{source}: {report.read:,} records in {report.batches:,} batches")
    table.add_column("result")
    table.add_column("records", justify="right")
    table.add_row("valid", f"{report.valid:,}")
    table.add_row("label rows written", f"{report.changed:,}")
    for reason, n in sorted(report.rejected.items()):
        table.add_row(f"dead letter: {reason}", f"{n:,}")
    return table


@labels_app.command("ingest-labels")
def ingest_labels(
    topic: Annotated[str, typer.Option(help="Topic to read labels from.")] = (
        TRANSACTION_LABELS.name
    ),
    group: Annotated[str, typer.Option(help="Consumer group (its offsets are committed).")] = (
        "fraudstream-label-ingest"
    ),
    dead_letters: Annotated[str, typer.Option(help="Where invalid labels go.")] = DEAD_LETTERS.name,
    idle: Annotated[
        float | None, typer.Option(help="Stop after this many idle seconds (default: run on).")
    ] = None,
    batch_size: Annotated[int, typer.Option(min=1, help="Records per Postgres transaction.")] = 500,
) -> None:
    """Upsert labels from Kafka into Postgres; invalid ones go to dead letters with a reason.

    A replay changes nothing: the label with the latest label_time wins. Ctrl-C stops cleanly.
    """
    from fraudstream.services.ingest import IngestReport, LabelIngest

    settings = load_settings()
    ingest = LabelIngest(
        settings.kafka,
        settings.postgres,
        group,
        source=topic,
        dead_letters=dead_letters,
        batch_size=batch_size,
    )
    report = IngestReport()
    columns = (SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn())
    with Progress(*columns, console=console) as bar:
        task = bar.add_task("ingesting labels", total=None)

        def show(seen: IngestReport) -> None:
            nonlocal report
            report = seen
            bar.update(task, description=f"ingesting labels: {seen.read:,} read")

        try:
            report = ingest.run(idle, progress=show)
        except KeyboardInterrupt:
            console.print("stopped; offsets of finished batches are committed")
    console.print(_summary(topic, report))
