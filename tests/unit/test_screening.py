"""The row policy on files: the stream's validator, row by row, reported and excluded."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from fraudstream.cli import app
from fraudstream.generator import GeneratorConfig, generate
from fraudstream.schema.tables import TableContractError, wire_records
from fraudstream.screening import EXAMPLES, RowPolicyError, screen, screen_frame
from fraudstream.validation import Rejection, TransactionValidator

NOW = datetime(2026, 6, 1, tzinfo=UTC)
CONFIG = GeneratorConfig(seed=3, start=NOW - timedelta(days=3), days=2, customers=300,
                         merchants=300)  # fmt: skip
# row position -> (field, value, reason code the stream gives it)
BAD = {
    3: ("amount", -1.5, "amount_negative"),
    10: ("currency", "XXY", "unknown_currency"),
    11: ("amount", 12.345, "amount_precision"),
    20: ("amount", 5e7, "amount_absurd"),
    30: ("event_time", NOW + timedelta(days=1), "event_time_in_future"),
    31: ("amount", -2.0, "amount_negative"),
    40: ("amount", -3.0, "amount_negative"),
    41: ("amount", -4.0, "amount_negative"),
    50: ("channel", "carrier-pigeon", "schema_violation"),
}


def _spoiled() -> pa.Table:
    """A generated history with one invalid value at each position of ``BAD``."""
    table = generate(CONFIG).transactions
    columns = {name: table.column(name).to_pylist() for name in table.column_names}
    for i, (name, value, _) in BAD.items():
        columns[name][i] = value
    return pa.table(columns, schema=table.schema)


def test_every_row_gets_the_streams_verdict_and_refusals_are_counted_per_reason() -> None:
    table = _spoiled()
    screened = screen(table, "transaction", NOW, "file.parquet")
    validator = TransactionValidator()
    verdicts = [
        not isinstance(validator.validate(value, NOW), Rejection)
        for _, _, value in wire_records(table, "transaction")
    ]
    assert screened.kept.to_pylist() == verdicts
    assert screened.rows == table.num_rows
    assert [i for i, ok in enumerate(verdicts) if not ok] == sorted(BAD)
    expected: dict[str, int] = {}
    for *_, reason in BAD.values():
        expected[reason] = expected.get(reason, 0) + 1
    assert screened.excluded == expected
    ids = table.column("transaction_id").to_pylist()
    negative = [ids[i] for i, (*_, r) in sorted(BAD.items()) if r == "amount_negative"]
    assert screened.examples["amount_negative"] == negative[:EXAMPLES]
    line = screened.describe()
    assert f"{len(BAD)} of {table.num_rows:,} rows" in line
    assert "amount_negative 4 (e.g. " + ", ".join(negative[:EXAMPLES]) + ")" in line
    assert screened.summary() == {
        "rows_read": table.num_rows,
        "rows_excluded": len(BAD),
        **{f"rows_excluded_{r}": n for r, n in sorted(expected.items())},
    }


def test_strict_turns_any_refusal_into_an_error_naming_the_rows_and_the_fix() -> None:
    screened = screen(_spoiled(), "transaction", NOW, "file.parquet")
    assert screened.check(strict=False) is screened
    with pytest.raises(RowPolicyError, match=r"file\.parquet: 9 of .* drop --strict"):
        screened.check(strict=True)
    clean = screen(generate(CONFIG).transactions, "transaction", NOW)
    assert clean.excluded_rows == 0
    assert clean.check(strict=True) is clean


def test_a_frame_keeps_its_own_columns_and_loses_only_the_refused_rows() -> None:
    frame = _spoiled().to_pandas()
    frame["note"] = "outside the contract"
    kept, screened = screen_frame(frame, "transaction", NOW, "frame")
    assert len(kept) == len(frame) - len(BAD)
    assert list(kept.columns) == list(frame.columns)
    dropped = set(frame["transaction_id"]) - set(kept["transaction_id"])
    assert dropped == {frame["transaction_id"][i] for i in BAD}
    assert screened.excluded_rows == len(BAD)
    bad_type = frame.assign(amount="twelve")
    with pytest.raises(TableContractError, match="'amount'"):
        screen_frame(bad_type, "transaction", NOW, "frame")


def test_generate_history_leaves_out_and_reports_rows_ahead_of_the_clock(tmp_path: Path) -> None:
    today = datetime.now(UTC).date().isoformat()
    args = ["generate", "history", "--days", "2", "--start", today, "--customers", "300",
            "--merchants", "300"]  # fmt: skip
    result = CliRunner().invoke(app, [*args, "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "event_time_in_future" in result.output
    written = pq.read_table(tmp_path / "transactions.parquet")
    assert written.column("event_time").to_pylist()[-1] <= datetime.now(UTC) + timedelta(minutes=5)
    labelled = set(pq.read_table(tmp_path / "labels.parquet").column("transaction_id").to_pylist())
    assert labelled <= set(written.column("transaction_id").to_pylist())

    cli = Path(sys.executable).parent / "fraudstream"
    strict = subprocess.run(
        [str(cli), *args, "--out", str(tmp_path / "strict"), "--strict"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert strict.returncode == 1
    assert "error (row policy)" in strict.stderr
    assert "event_time_in_future" in strict.stderr
    assert not (tmp_path / "strict" / "transactions.parquet").exists()


def test_train_excludes_refused_rows_and_records_why_in_its_report(tmp_path: Path) -> None:
    config = GeneratorConfig(seed=8, start=NOW - timedelta(days=40), days=30, customers=200,
                             merchants=300)  # fmt: skip
    data = generate(config)
    table = data.transactions
    amounts = table.column("amount").to_pylist()
    amounts[5] = amounts[900] = -1.0
    currencies = table.column("currency").to_pylist()
    currencies[77] = "XXY"
    table = table.set_column(table.schema.get_field_index("amount"), "amount", pa.array(amounts))
    table = table.set_column(
        table.schema.get_field_index("currency"), "currency", pa.array(currencies)
    )
    txns, labels, report = tmp_path / "t.parquet", tmp_path / "l.parquet", tmp_path / "r.json"
    pq.write_table(table, txns)
    pq.write_table(data.labels, labels)
    result = CliRunner().invoke(
        app,
        ["train", "--transactions", str(txns), "--labels", str(labels), "--train-days", "18",
         "--delay-days", "5", "--test-days", "7", "--candidates", "1", "--no-smote",
         "--no-register", "--report", str(report)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert f"3 of {table.num_rows:,} rows fail the row policy" in result.output
    assert "amount_negative 2" in result.output
    lineage = json.loads(report.read_text())["lineage"]
    assert lineage["rows_read"] == table.num_rows
    assert lineage["rows_excluded"] == 3
    assert lineage["rows_excluded_amount_negative"] == 2
    assert lineage["rows_excluded_unknown_currency"] == 1
    assert lineage["rows_total"] == table.num_rows - 3  # what the features were built from
