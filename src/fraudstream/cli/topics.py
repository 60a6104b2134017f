"""`fraudstream topics ...` and `fraudstream db ...`: Kafka topics and the database schema."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from fraudstream.adapters.kafka import (
    delete_topics,
    describe_topics,
    ensure_topics,
    scratch_topics,
)
from fraudstream.adapters.partitions import ensure_ahead
from fraudstream.adapters.postgres import migrate
from fraudstream.settings import load_settings

topics_app = typer.Typer(help="The platform's Kafka topics.", no_args_is_help=True)
db_app = typer.Typer(help="The platform's PostgreSQL schema.", no_args_is_help=True)
console = Console()


def _show(states: list) -> None:  # type: ignore[type-arg]
    table = Table(title_justify="left")
    for col in ("topic", "partitions", "replication", "min.insync", "action"):
        table.add_column(col)
    for s in states:
        table.add_row(
            s.name,
            str(s.partitions),
            str(s.replication_factor),
            str(s.min_insync_replicas),
            s.action,
        )
    console.print(table)


@topics_app.command("ensure")
def ensure() -> None:
    """Create missing topics and bring existing ones to the configured shape (idempotent)."""
    _show(ensure_topics(load_settings().kafka))


@topics_app.command("list")
def list_() -> None:
    """Show each platform topic as the cluster has it."""
    _show(describe_topics(load_settings().kafka))


@topics_app.command("prune")
def prune(
    yes: Annotated[
        bool, typer.Option("--yes", help="Delete them (without it: list only).")
    ] = False,
) -> None:
    """List, or with --yes delete, scratch topics left by interrupted tests and benchmarks.

    Only names of the form scratch-<name>-<10 hex digits> are touched (what smoke checks,
    tests and benchmarks create and normally delete); the platform's topics never match.
    Run it when no test or benchmark is using the cluster.
    """
    settings = load_settings().kafka
    found = scratch_topics(settings)
    if not found:
        console.print("no scratch topics")
        return
    for name, partitions in found.items():
        console.print(f"{name}  ({partitions} partitions)")
    total = f"{len(found)} scratch topics, {sum(found.values())} partitions"
    if not yes:
        console.print(f"{total}: run `fraudstream topics prune --yes` to delete them")
        return
    delete_topics(settings, list(found))
    console.print(f"deleted {total}")


@db_app.command("migrate")
def migrate_() -> None:
    """Apply pending schema migrations and make the coming days' partitions (idempotent)."""
    settings = load_settings()
    applied = migrate(settings.postgres)
    ensure_ahead(
        settings.postgres, datetime.now(UTC).date(), settings.retention.partitions_ahead_days
    )
    if applied:
        for m in applied:
            console.print(f"applied {m.version:04d}_{m.name}")
    else:
        console.print("schema is up to date")
