"""`fraudstream generate history` as a user runs it (no services needed)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
from typer.testing import CliRunner

from fraudstream.cli import app
from fraudstream.schema import arrow_schema

runner = CliRunner()


def test_history_writes_both_files_deterministically(tmp_path: Path) -> None:
    args = ["generate", "history", "--days", "2", "--seed", "4", "--customers", "800",
            "--merchants", "300", "--fraud-rate", "0.02", "--start", "2026-03-01"]  # fmt: skip
    first = runner.invoke(app, [*args, "--out", str(tmp_path / "a")])
    second = runner.invoke(app, [*args, "--out", str(tmp_path / "b")])
    assert first.exit_code == 0, first.output
    assert second.exit_code == 0, second.output
    assert "transactions" in first.output
    a = pq.read_table(tmp_path / "a" / "transactions.parquet")
    assert a.schema.equals(arrow_schema("transaction"))
    assert a.equals(pq.read_table(tmp_path / "b" / "transactions.parquet"))
    labels = pq.read_table(tmp_path / "a" / "labels.parquet")
    assert labels.num_rows > 0
    assert str(a.column("event_time")[0].as_py().date()) == "2026-03-01"


def test_scenario_weights_from_the_command_line(tmp_path: Path) -> None:
    result = runner.invoke(
        app,
        ["generate", "history", "--days", "2", "--customers", "800", "--merchants", "300",
         "--fraud-rate", "0.02", "--weight", "high_amount=1", "--label", "under_reporting_rate=0",
         "--label", "analyst_share=1", "--out", str(tmp_path)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    labels = pq.read_table(tmp_path / "labels.parquet").to_pandas()
    fraud = labels[labels.is_fraud]
    assert set(fraud.fraud_scenario) == {"high_amount"}
    assert set(fraud.source) == {"analyst"}
    tx = pq.read_table(tmp_path / "transactions.parquet")
    assert abs(len(fraud) - tx.num_rows * 0.02) <= 1  # nothing under-reported


def test_the_labels_regime_option_selects_the_preset_and_label_knobs_adjust_it(
    tmp_path: Path,
) -> None:
    base = ["generate", "history", "--days", "3", "--customers", "800", "--merchants", "300",
            "--fraud-rate", "0.02", "--seed", "2"]  # fmt: skip
    runs = {
        "default": [],
        "chargeback-only": ["--labels-regime", "chargeback-only"],
        "adjusted": ["--labels-regime", "chargeback-only", "--label", "max_days=10"],
    }
    delays = {}
    for name, extra in runs.items():
        result = runner.invoke(app, [*base, *extra, "--out", str(tmp_path / name)])
        assert result.exit_code == 0, result.output
        labels = pq.read_table(tmp_path / name / "labels.parquet").to_pandas()
        tx = pq.read_table(tmp_path / name / "transactions.parquet").to_pandas()
        labels = labels.merge(
            tx[["transaction_id", "event_time"]], on="transaction_id", suffixes=("", "_txn")
        )
        delays[name] = (labels.label_time - labels.event_time).dt.total_seconds() / 86400
        if name == "default":
            assert set(labels.source) == {"analyst", "chargeback"}
        else:
            assert set(labels.source) == {"chargeback"}
    assert delays["default"].min() < 1.0  # analysts' same-day verdicts
    assert delays["chargeback-only"].min() >= 7.0
    assert delays["chargeback-only"].max() > 10.0
    assert delays["adjusted"].min() >= 7.0
    assert delays["adjusted"].max() <= 10.0


def test_an_unknown_labels_regime_is_one_readable_line(tmp_path: Path) -> None:
    """Through the real entry point, for both commands."""
    cli = Path(sys.executable).parent / "fraudstream"
    for command in (["history", "--out", str(tmp_path)], ["stream", "--rate", "5", "--count", "1"]):
        argv = [str(cli), "generate", *command, "--labels-regime", "slow"]
        result = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
        assert result.returncode == 1, result.stderr
        first = result.stderr.splitlines()[0]
        assert first == (
            "error (generator): unknown label regime 'slow'; known: mixed, chargeback-only"
        )
        assert "Traceback" not in result.stderr
    assert not (tmp_path / "transactions.parquet").exists()


def test_an_unknown_label_knob_is_a_usage_error(tmp_path: Path) -> None:
    result = runner.invoke(
        app, ["generate", "history", "--label", "speed=3", "--out", str(tmp_path)]
    )
    assert result.exit_code == 2
    assert "speed" in result.output


def test_a_bad_knob_is_a_readable_error(tmp_path: Path) -> None:
    """Through the real entry point, which maps known errors to one readable line."""
    cli = Path(sys.executable).parent / "fraudstream"
    argv = [str(cli), "generate", "history", "--merchants", "10", "--out", str(tmp_path)]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 1
    assert "error (generator)" in result.stderr
    assert "300 merchants" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "transactions.parquet").exists()


def test_a_stream_needs_a_bound_or_forever_and_not_both() -> None:
    unbounded = runner.invoke(app, ["generate", "stream", "--rate", "5"])
    assert unbounded.exit_code == 2
    assert "--forever" in unbounded.output
    both = runner.invoke(app, ["generate", "stream", "--rate", "5", "--forever", "--count", "3"])
    assert both.exit_code == 2
    assert "--forever takes neither" in both.output
