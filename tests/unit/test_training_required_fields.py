"""A history with only the required transaction fields trains, evaluates and scores."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from fraudstream.cli import app
from fraudstream.features.catalogue import feature_names
from fraudstream.features.replay import build_features
from fraudstream.generator import GeneratorConfig, generate
from fraudstream.model.coldstart import run_anomaly_experiment
from fraudstream.model.experiment import run_experiment, scores_of
from fraudstream.model.split import TimeSplit

START = datetime(2026, 3, 2, tzinfo=UTC)
REQUIRED = ["transaction_id", "event_time", "card_id", "merchant_id", "amount", "currency"]


@pytest.fixture(scope="module")
def history() -> tuple[pd.DataFrame, pd.DataFrame]:
    data = generate(GeneratorConfig(seed=8, start=START, days=30, customers=200, merchants=300))
    return data.transactions.to_pandas()[REQUIRED], data.labels.to_pandas()


def test_required_fields_only_train_and_score(history: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    txns, labels = history
    split = TimeSplit(pd.Timestamp(START), 18, 5, 7)
    experiment = run_experiment(
        txns, labels, split, candidates=1, arms=("scale_pos_weight",), final_fit="recent"
    )
    assert experiment.kind == "xgboost"
    assert experiment.reports["xgboost"]["rows"] > 0
    # the registered model: the chosen configuration refitted on every row before the test
    before_test = txns["event_time"] < pd.Timestamp(split.test_start)
    assert experiment.params["final_fit"] == "recent"
    assert experiment.params["final_fit_rows"] == int(before_test.sum())
    assert experiment.params["final_fit_rows"] > experiment.lineage["rows_train"]
    assert experiment.model.get_booster().num_boosted_rounds() == experiment.params["n_trees"]
    assert (
        experiment.reports["xgboost_training_period"]["rows"]
        == (experiment.reports["xgboost"]["rows"])
    )
    assert not np.isnan(experiment.reports["xgboost"]["average_precision"])
    rows = build_features(txns, labels)
    scores = scores_of(experiment.model, rows)
    assert len(scores) == len(txns)
    assert np.all((scores >= 0) & (scores <= 1))
    assert rows["card_distance_km_prev"].isna().all()
    assert set(experiment.figures) == {
        "pr_roc_curves.png",
        "score_distribution.png",
        "reliability.png",
        "feature_importance.png",
        "shap_summary.png",
    }


def test_cold_start_needs_no_labels(history: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    txns, _ = history
    split = TimeSplit(pd.Timestamp(START), 18, 5, 7)
    experiment = run_anomaly_experiment(txns, None, split, target_alert_rate=0.02)
    assert experiment.kind == "isolation_forest"
    assert experiment.reports == {}
    assert experiment.fit_metrics["train_alert_rate"] == pytest.approx(0.02, abs=0.005)
    x = build_features(txns)[feature_names()].to_numpy(np.float64)
    assert experiment.model.predict_proba(x).shape == (len(txns), 2)


def test_train_final_fit_option_selects_what_the_model_is_fitted_on(
    history: tuple[pd.DataFrame, pd.DataFrame], tmp_path: Path
) -> None:
    txns, labels = history
    txns.to_parquet(tmp_path / "t.parquet")
    labels.to_parquet(tmp_path / "l.parquet")
    base = ["train", "--transactions", str(tmp_path / "t.parquet"), "--labels",
            str(tmp_path / "l.parquet"), "--train-days", "18", "--delay-days", "5",
            "--test-days", "7", "--candidates", "1", "--no-smote", "--no-register"]  # fmt: skip
    scorers = {}
    for final_fit in ("recent", "training-period"):
        report = tmp_path / f"{final_fit}.json"
        result = CliRunner().invoke(app, [*base, "--final-fit", final_fit, "--report", str(report)])
        assert result.exit_code == 0, result.output
        scorers[final_fit] = set(json.loads(report.read_text())["reports"])
    calibration = {"xgboost", "xgboost_uncalibrated"}
    assert scorers["recent"] == {*calibration, "xgboost_training_period", "logistic", "rules"}
    assert scorers["training-period"] == {*calibration, "logistic", "rules"}
    bad = CliRunner().invoke(app, [*base, "--final-fit", "latest"])
    assert bad.exit_code == 2
    assert "--final-fit" in bad.output
    assert "'latest': choose 'recent'" in bad.output
