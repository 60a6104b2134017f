"""`fraudstream generate history|stream`, `replay`, `load` and `validate`: wiring only."""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import fields, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import pyarrow as pa
import pyarrow.compute as pc
import typer
from rich.console import Console
from rich.progress import Progress, TaskID
from rich.table import Table

from fraudstream.cli.inputs import StrictOpt, progress_bar, report_screened, utc_time
from fraudstream.generator import (
    DEFAULT_LABEL_REGIME,
    LABEL_REGIMES,
    SCENARIOS,
    Generated,
    GeneratorConfig,
    LabelConfig,
    generate,
    label_regime,
    write_history,
)
from fraudstream.schema.tables import conform, read_file
from fraudstream.screening import Screened, screen
from fraudstream.services.feed import LiveStream, StreamTopics, replay
from fraudstream.services.ingest import validate_topic
from fraudstream.settings import load_settings
from fraudstream.topics import DEAD_LETTERS, TRANSACTION_LABELS, TRANSACTIONS
from fraudstream.validation import TransactionValidator, ValidationPolicy

transactions_app = typer.Typer(no_args_is_help=True)
generate_app = typer.Typer(
    help="Synthetic transactions with fraud scenarios and delayed labels.", no_args_is_help=True
)
transactions_app.add_typer(generate_app, name="generate")
console = Console()
TASK = TaskID(0)  # each command shows one bar
stderr = Console(stderr=True)


def _bar(description: str, total: float | None) -> Progress:
    progress = progress_bar(console)
    progress.add_task(description, total=total)
    return progress


def _screen(table: pa.Table, where: str, strict: bool) -> Screened:
    """The row policy on every transaction of ``table``, with a bar; reported, or
    ``RowPolicyError`` with ``strict`` when a row fails."""
    with _bar("row policy", table.num_rows) as bar:
        screened = screen(
            table, "transaction", datetime.now(UTC), where,
            on_rows=lambda n: bar.update(TASK, completed=n),
        )  # fmt: skip
    report_screened(screened.check(strict), console)
    return screened


def _kept(data: Generated, screened: Screened) -> Generated:
    """The generated period without the rows the row policy refused (and their labels)."""
    if not screened.excluded_rows:
        return data
    transactions = data.transactions.filter(screened.kept)
    ids = transactions.column("transaction_id")
    labels = data.labels.filter(pc.is_in(data.labels.column("transaction_id"), ids))
    scenario = data.scenario[screened.kept.to_numpy(zero_copy_only=False)]
    return replace(data, transactions=transactions, labels=labels, scenario=scenario)


def _pairs(pairs: list[str], known: tuple[str, ...], what: str) -> dict[str, float]:
    """``NAME=NUMBER`` options as a dict; an unknown name or a non-number is a usage error."""
    chosen: dict[str, float] = {}
    for pair in pairs:
        name, _, value = pair.partition("=")
        if name not in known:
            raise typer.BadParameter(f"{pair!r}: unknown {what} {name!r}; known: {list(known)}")
        try:
            chosen[name] = float(value)
        except ValueError:
            raise typer.BadParameter(f"{pair!r}: expected {what.upper()}=NUMBER") from None
    return chosen


Seed = Annotated[int, typer.Option(help="Same seed, same output.")]
Customers = Annotated[int, typer.Option(help="Card holders in the world (1-2 cards each).")]
Merchants = Annotated[int, typer.Option(help="Merchants and terminals (at least 300).")]
FraudRate = Annotated[float, typer.Option(help="Share of transactions that are fraud.")]
TxTopic = Annotated[str, typer.Option(help="Transactions topic.")]
LabelsTopic = Annotated[str, typer.Option(help="Labels topic.")]
LabelKnobs = Annotated[
    list[str],
    typer.Option(
        "--label",
        help="KNOB=VALUE for labels, repeatable, applied on top of --labels-regime: "
        "under_reporting_rate, analyst_share, chargeback_median_days, analyst_median_days, "
        "max_days, ... (docs/data.md).",
    ),
]
LabelsRegime = Annotated[
    str,
    typer.Option(
        help=f"How fraud becomes known, a preset of the label knobs: {', '.join(LABEL_REGIMES)} "
        "(docs/data.md).",
    ),
]
Weights = Annotated[
    list[str],
    typer.Option(
        "--weight",
        help=f"SCENARIO=WEIGHT, repeatable; unnamed scenarios get 0. {', '.join(SCENARIOS)}",
    ),
]


def _config(
    seed: int,
    days: float,
    world: tuple[int, int],
    fraud_rate: float,
    weights: list[str],
    label_knobs: list[str],
    regime: str = DEFAULT_LABEL_REGIME,
) -> GeneratorConfig:
    """The generator's configuration from the options; an unknown regime is a ConfigError."""
    config = GeneratorConfig(
        seed=seed, days=days, customers=world[0], merchants=world[1], fraud_rate=fraud_rate
    )
    knobs = tuple(f.name for f in fields(LabelConfig))
    labels = replace(label_regime(regime), **_pairs(label_knobs, knobs, "label knob"))
    config = replace(config, labels=labels)
    if weights:
        config = replace(config, scenario_weights=_pairs(weights, SCENARIOS, "scenario"))
    return config


@generate_app.command("history")
def history(
    out: Annotated[Path, typer.Option(help="Directory for transactions.parquet, labels.parquet.")],
    days: Annotated[float, typer.Option(help="Simulated days.")] = 30,
    seed: Seed = 0,
    start: Annotated[str, typer.Option(help="First day, UTC (YYYY-MM-DD).")] = "2026-01-01",
    customers: Customers = 10_000,
    merchants: Merchants = 2_000,
    fraud_rate: FraudRate = 0.005,
    weight: Weights = [],  # noqa: B006
    labels_regime: LabelsRegime = DEFAULT_LABEL_REGIME,
    label: LabelKnobs = [],  # noqa: B006
    strict: StrictOpt = False,
) -> None:
    """Write a history of transactions and their delayed labels as Parquet.

    Every transaction passes the stream's row policy before it is written: a row
    it refuses (e.g. an event time ahead of now, when --start lies in the future)
    is left out with its label and reported, or with --strict stops the command.
    """
    config = _config(seed, days, (customers, merchants), fraud_rate, weight, label, labels_regime)
    config = replace(config, start=utc_time(start, "--start"))
    config.check()
    steps = ["world", "genuine", *SCENARIOS, "assemble"]
    with _bar("generating", len(steps)) as bar:
        data = generate(config, progress=lambda step: bar.update(TASK, advance=1, description=step))
    data = _kept(data, _screen(data.transactions, "generated history", strict))
    with _bar("writing Parquet", 1) as bar:
        tx_path, label_path = write_history(data, out)
        bar.update(TASK, advance=1, description="done")
    fraud = sum(1 for s in data.scenario if s is not None)
    console.print(
        f"{data.transactions.num_rows:,} transactions ({fraud:,} fraud) -> {tx_path}\n"
        f"{data.labels.num_rows:,} labels -> {label_path}"
    )


@generate_app.command("stream")
def stream(
    rate: Annotated[float, typer.Option(help="Transactions per second.")],
    duration: Annotated[float | None, typer.Option(help="Stop after this many seconds.")] = None,
    count: Annotated[int | None, typer.Option(help="Stop after this many transactions.")] = None,
    forever: Annotated[
        bool, typer.Option(help="Run until stopped (Ctrl-C or SIGTERM), as a Deployment does.")
    ] = False,
    time_scale: Annotated[
        float, typer.Option(help="Label delays are divided by this (1440: a day is a minute).")
    ] = 1440.0,
    wait_labels: Annotated[bool, typer.Option(help="At the end, wait for pending labels.")] = False,
    seed: Seed = 0,
    customers: Customers = 10_000,
    merchants: Merchants = 2_000,
    fraud_rate: FraudRate = 0.005,
    weight: Weights = [],  # noqa: B006
    labels_regime: LabelsRegime = DEFAULT_LABEL_REGIME,
    label: LabelKnobs = [],  # noqa: B006
    topic: TxTopic = TRANSACTIONS.name,
    labels_topic: LabelsTopic = TRANSACTION_LABELS.name,
    truth: Annotated[
        Path | None,
        typer.Option(
            help="Also write the ground truth (every fraudulent transaction sent, reported "
            "or not) to this JSON-lines file, for measuring alert precision."
        ),
    ] = None,
) -> None:
    """Produce live transactions to Kafka (key card_id, acks=all) and labels after their delay."""
    if duration is None and count is None and not forever:
        raise typer.BadParameter("give --duration SECONDS, --count N or --forever")
    if forever and (duration is not None or count is not None):
        raise typer.BadParameter("--forever takes neither --duration nor --count")
    config = _config(seed, 1.0, (customers, merchants), fraud_rate, weight, label, labels_regime)
    topics = StreamTopics(transactions=topic, labels=labels_topic)
    with (
        _bar("streaming", count) as bar,
        truth.open("a", encoding="utf-8") if truth else nullcontext() as truth_file,
    ):
        live = LiveStream(
            load_settings().kafka, config, rate, time_scale, topics,
            progress=lambda n: bar.update(TASK, advance=n), truth=truth_file,
        )  # fmt: skip
        report = live.run(count, duration, wait_labels)
    console.print(
        f"sent {report.transactions:,} transactions ({report.rate:,.0f}/s) and "
        f"{report.labels:,} labels; {report.labels_pending:,} labels were not due yet"
    )


@transactions_app.command("replay")
def replay_(
    transactions: Annotated[Path, typer.Option(help="Parquet, CSV or JSONL of transactions.")],
    labels: Annotated[Path | None, typer.Option(help="Parquet, CSV or JSONL of labels.")] = None,
    rate: Annotated[str, typer.Option(help="Transactions per second, or 'max'.")] = "max",
    topic: TxTopic = TRANSACTIONS.name,
    labels_topic: LabelsTopic = TRANSACTION_LABELS.name,
    strict: StrictOpt = False,
    send_invalid: Annotated[
        bool,
        typer.Option(
            help="Send the rows the row policy refuses too, so the stream dead-letters them "
            "(to exercise the dead-letter path)."
        ),
    ] = False,
) -> None:
    """Send a file of canonical transactions in event-time order, labels at their label_time.

    Every transaction is first checked with the stream's row policy: refused rows
    are reported per reason and not sent (--strict: nothing is sent; --send-invalid:
    they are sent, and the stream dead-letters them).
    """
    if strict and send_invalid:
        raise typer.BadParameter("--strict sends nothing when a row fails; drop one of the two")
    pace = None if rate == "max" else float(rate)
    tx = conform(read_file(transactions), "transaction", str(transactions))
    lb = conform(read_file(labels), "label", str(labels)) if labels else None
    for ignored in (tx.ignored_columns, lb.ignored_columns if lb else ()):
        if ignored:
            console.print(f"[yellow]not in the contract, not sent:[/] {', '.join(ignored)}")
    screened = _screen(tx.table, str(transactions), strict)
    table = tx.table if send_invalid else tx.table.filter(screened.kept)
    if send_invalid and screened.excluded_rows:
        console.print("sending them anyway (--send-invalid): the stream dead-letters them")
    topics = StreamTopics(transactions=topic, labels=labels_topic)
    with _bar("replaying", table.num_rows) as bar:
        report = replay(
            load_settings().kafka, table, lb.table if lb else None, pace, topics,
            progress=lambda n: bar.update(TASK, advance=n),
        )  # fmt: skip
    console.print(
        f"sent {report.transactions:,} transactions and {report.labels:,} labels "
        f"in {report.seconds:.1f}s ({report.rate:,.0f} tx/s)"
    )


@transactions_app.command("load")
def load(
    transactions: Annotated[Path, typer.Option(help="Parquet, CSV or JSONL of transactions.")],
    labels: Annotated[Path | None, typer.Option(help="Parquet, CSV or JSONL of labels.")] = None,
    source: Annotated[
        str, typer.Option(help="Recorded as the rows' source_topic (where they came from).")
    ] = "load",
    chunk: Annotated[int, typer.Option(min=1, help="Rows per database transaction.")] = 20_000,
    strict: StrictOpt = False,
) -> None:
    """Load a history of transactions (and their labels) into PostgreSQL, without scoring it.

    This is how a new deployment gets the history the retraining DAG trains on
    (`extract-training-set` reads transactions_raw and labels). Rows the row policy
    refuses are reported and left out (--strict: nothing is loaded). Idempotent:
    a transaction already stored is left as it is, and of two labels for one
    transaction the later label_time wins, so loading a file twice changes nothing.
    """
    from fraudstream.adapters.postgres import connect, insert_transactions, upsert_labels
    from fraudstream.schema import Label

    tx = conform(read_file(transactions), "transaction", str(transactions))
    lb = conform(read_file(labels), "label", str(labels)) if labels else None
    table = tx.table.filter(_screen(tx.table, str(transactions), strict).kept)
    added = changed = 0
    with connect(load_settings().postgres) as conn:
        with _bar("loading transactions", table.num_rows) as bar:
            for batch in table.to_batches(max_chunksize=chunk):
                added += insert_transactions(conn, batch.to_pylist(), source)
                conn.commit()
                bar.update(TASK, advance=batch.num_rows)
        if lb is not None:
            with _bar("loading labels", lb.table.num_rows) as bar:
                for batch in lb.table.to_batches(max_chunksize=chunk):
                    changed += upsert_labels(conn, (Label(**r) for r in batch.to_pylist()))
                    conn.commit()
                    bar.update(TASK, advance=batch.num_rows)
    console.print(
        f"{added:,} of {table.num_rows:,} transactions were new"
        + (f"; {changed:,} of {lb.table.num_rows:,} labels new or later" if lb else ""),
        soft_wrap=True,
    )


@transactions_app.command("validate")
def validate(
    topic: Annotated[str, typer.Option(help="Topic to check.")] = TRANSACTIONS.name,
    group: Annotated[str, typer.Option(help="Consumer group (its offsets are committed).")] = (
        "fraudstream-validate"
    ),
    dead_letters: Annotated[str, typer.Option(help="Where rejects go.")] = DEAD_LETTERS.name,
    idle: Annotated[float, typer.Option(help="Stop after this many idle seconds.")] = 5.0,
    max_bytes: Annotated[int, typer.Option(help="Largest accepted message.")] = 64 * 1024,
) -> None:
    """Validate a topic against the contract; invalid records go to dead letters with a reason."""
    validator = TransactionValidator(ValidationPolicy(max_bytes=max_bytes))
    with _bar("validating", None) as bar:
        report = validate_topic(
            load_settings().kafka, topic, group, dead_letters, validator, idle,
            progress=lambda n: bar.update(TASK, advance=n),
        )  # fmt: skip
    table = Table(title=f"{topic}: {report.total:,} records")
    table.add_column("result")
    table.add_column("records", justify="right")
    table.add_row("valid", f"{report.valid:,}")
    for reason, n in sorted(report.rejected.items()):
        table.add_row(f"dead letter: {reason}", f"{n:,}")
    console.print(table)
