"""`fraudstream rules check | backtest` as a user runs them, on a small generated history."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from typer.testing import CliRunner

from fraudstream.cli import app
from fraudstream.rules.ruleset import starter_path

runner = CliRunner()


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("history")
    args = ["generate", "history", "--days", "3", "--seed", "5", "--customers", "800",
            "--merchants", "300", "--fraud-rate", "0.03", "--start", "2026-03-01",
            "--weight", "card_testing=3", "--out", str(out)]  # fmt: skip
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    return out


def _backtest(history: Path, *extra: str) -> dict[str, Any]:
    result = runner.invoke(
        app,
        ["rules", "backtest", "--rules", str(starter_path()),
         "--transactions", str(history / "transactions.parquet"),
         "--labels", str(history / "labels.parquet"), "--json", *extra],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    summary: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return summary


def test_check_prints_the_rules_in_precedence_order() -> None:
    result = runner.invoke(app, ["rules", "check", str(starter_path()), "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["version"] == "starter-1"
    names = [r["name"] for r in summary["rules"]]
    assert names[0] == "allowed_card"
    assert "card_testing_burst" in names
    outcomes = [r["outcome"] for r in summary["rules"]]
    assert outcomes == sorted(outcomes, key=["approve", "decline", "review"].index)
    burst = next(r for r in summary["rules"] if r["name"] == "card_testing_burst")
    assert burst["reads"] == ["card_amount_mean_1h", "card_distinct_merchants_1h"]


def _refused(*args: str) -> str:
    """Run the real entry point, which maps known errors to one line and status 1; the
    error output on one line (the console wraps long lines)."""
    cli = Path(sys.executable).parent / "fraudstream"
    result = subprocess.run(
        [str(cli), *args], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    return " ".join(result.stderr.split())


def test_a_bad_rule_set_is_one_readable_line(tmp_path: Path) -> None:
    """Through the real entry point, which maps known errors to one line and status 1."""
    path = tmp_path / "rules.yaml"
    path.write_text(
        'version: "1"\nrules:\n  - name: probe\n    condition: amount.__class__ == 1\n'
        "    outcome: decline\n"
    )
    shown = _refused("rules", "check", str(path))
    assert shown.startswith(f"error (rules): {path}: rule 'probe': attribute access")
    assert "hint: fix the rule named above" in shown


def test_backtest_without_a_model_measures_the_rules(history: Path) -> None:
    summary = _backtest(history)
    assert summary["command"] == "rules backtest"
    assert summary["version"] == "starter-1"
    assert summary["threshold"] is None
    rows, frauds = summary["rows"], summary["frauds"]
    assert 0 < frauds < rows
    lines = {line["name"]: line for line in summary["rules"]}
    burst = lines["card_testing_burst"]
    assert burst["hits"] > 0
    assert burst["precision"] > 0.5  # the generator's card testing is what it is written for
    assert burst["model_overlap"] is None  # no model: NaN written as null
    assert lines["blocked_card"]["hits"] == 0  # the starter's lists are empty
    (total,) = summary["totals"]
    assert total["name"] == "rules"
    assert total["hits"] >= burst["hits"]
    assert total["alert_rate"] == pytest.approx(total["hits"] / rows)


def test_backtest_with_a_score_file_adds_the_model(history: Path, tmp_path: Path) -> None:
    """A score file as score-file writes it: here the label itself, a perfect model on the
    frauds of the file, so the model's figures are known."""
    labels = pd.read_parquet(history / "labels.parquet")
    txns = pd.read_parquet(history / "transactions.parquet")
    fraud = set(labels.loc[labels.is_fraud, "transaction_id"])
    scores = pd.DataFrame(
        {
            "transaction_id": txns["transaction_id"],
            "score": [0.9 if t in fraud else 0.1 for t in txns["transaction_id"]],
        }
    )
    scores.to_parquet(tmp_path / "scores.parquet")
    summary = _backtest(history, "--scores", str(tmp_path / "scores.parquet"), "--threshold", "0.5")
    assert summary["threshold"] == 0.5
    totals = {line["name"]: line for line in summary["totals"]}
    assert totals["model"]["recall"] == pytest.approx(1.0)
    assert totals["model"]["precision"] == pytest.approx(1.0)
    combined = totals["model + rules"]
    assert combined["frauds"] == summary["frauds"]
    assert combined["hits"] >= totals["model"]["hits"]
    assert totals["model at the same alert count"]["hits"] == combined["hits"]
    outcomes = summary["outcomes"]
    assert sum(outcomes.values()) == summary["rows"]
    assert outcomes["review"] + outcomes["decline"] == combined["hits"]
    burst = next(line for line in summary["rules"] if line["name"] == "card_testing_burst")
    assert outcomes["decline"] >= burst["hits"] > 0  # a decline rule; no approve rule fires
    for line in summary["rules"]:
        assert line["beyond_model"] in (0, None) or line["hits"] == 0


def test_a_score_file_needs_a_threshold(history: Path) -> None:
    result = runner.invoke(
        app,
        ["rules", "backtest", "--rules", str(starter_path()),
         "--transactions", str(history / "transactions.parquet"),
         "--labels", str(history / "labels.parquet"),
         "--scores", str(history / "labels.parquet")],
    )  # fmt: skip
    assert result.exit_code == 2
    assert "--threshold" in result.output


def test_score_file_checks_its_rule_set_before_anything_else(tmp_path: Path) -> None:
    """A bad --rules file stops score-file with the rule's error before the model is asked
    for (no registry here) or the history is replayed."""
    path = tmp_path / "rules.yaml"
    path.write_text(
        'version: "1"\nrules:\n  - name: typo\n    condition: card_cnt_1h > 3\n'
        "    outcome: decline\n"
    )
    shown = _refused(
        "score-file", "--model", "champion", "--rules", str(path),
        "--transactions", str(tmp_path / "absent.parquet"), "--out", str(tmp_path / "o.csv"),
    )  # fmt: skip
    assert shown.startswith(f"error (rules): {path}: rule 'typo': unknown name 'card_cnt_1h'")
    assert not (tmp_path / "o.csv").exists()


def test_evaluate_checks_its_rule_set_before_anything_else(tmp_path: Path) -> None:
    """As score-file: a bad --rules file stops evaluate with the rule's error before the
    inputs are read (absent here) or the model is asked for (no registry here)."""
    path = tmp_path / "rules.yaml"
    path.write_text(
        'version: "1"\nrules:\n  - name: late\n    condition: score >> 0.5\n    outcome: review\n'
    )
    shown = _refused(
        "evaluate", "--model", "champion", "--rules", str(path),
        "--transactions", str(tmp_path / "absent.parquet"),
        "--labels", str(tmp_path / "absent.parquet"),
    )  # fmt: skip
    assert shown.startswith(f"error (rules): {path}: rule 'late':"), shown
    assert "hint: fix the rule named above" in shown
    assert "absent.parquet" not in shown
