"""Train on a generated history against the real MLflow, MinIO and PostgreSQL.

The registered version has its alias, metrics, artifacts in the bucket and a
``model_metadata`` row; the model loaded back reproduces the logged validation AP;
promotion takes the first challenger and refuses a worse one; a model of another feature set
is refused by its type.
"""

from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import mlflow
import mlflow.xgboost
import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient
from sklearn.metrics import average_precision_score

from fraudstream.adapters import registry
from fraudstream.adapters.object_store import s3_client
from fraudstream.adapters.postgres import connect
from fraudstream.features.catalogue import FEATURE_SET_VERSION
from fraudstream.features.replay import attach_labels, build_features
from fraudstream.generator import GeneratorConfig, generate, write_history
from fraudstream.model.experiment import scores_of
from fraudstream.model.metrics import expected_calibration_error
from fraudstream.model.split import TimeSplit, holdout_rows
from fraudstream.rules.decision import decide
from fraudstream.rules.ruleset import load_rule_set
from fraudstream.scoring.reload import registry_holder
from fraudstream.settings import Settings, load_settings
from tests.integration.conftest import CLI, run_cli
from tests.integration.history_support import register_worse_challenger

# Training on two shared cores takes minutes when other work runs beside it.
pytestmark = [
    pytest.mark.services("postgres", "minio", "mlflow", "kafka"),
    pytest.mark.timeout(1800),
]

START = datetime(2026, 2, 2, tzinfo=UTC)
TEST_START = "2026-03-02"  # 21 train days + 7 delay days after START


@pytest.fixture(scope="module")
def model_settings() -> Iterator[Settings]:
    """Settings with a model name of this module's own, also seen by the CLI it runs."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FRAUDSTREAM_MLFLOW_MODEL_NAME", f"fraud-detector-test-{uuid.uuid4().hex[:8]}")
        yield load_settings()


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    config = GeneratorConfig(seed=11, start=START, days=36, customers=300, merchants=300)
    txns, labels = write_history(generate(config), tmp_path_factory.mktemp("history"))
    return txns, labels


@pytest.fixture(scope="module")
def trained(model_settings: Settings, history: tuple[Path, Path]) -> tuple[str, str]:
    """(version, run_id) of one `fraudstream train` run."""
    txns, labels = history
    out = run_cli(
        "train",
        "--transactions",
        str(txns),
        "--labels",
        str(labels),
        "--train-start",
        START.date().isoformat(),
        "--candidates",
        "2",
        timeout=900,
    ).stdout
    assert "as @challenger" in out, out
    version = registry.version_for_alias(model_settings, registry.CHALLENGER)
    assert version is not None
    client = MlflowClient(model_settings.mlflow.uri)
    run_id = client.get_model_version(model_settings.mlflow.model_name, version).run_id
    return version, run_id


def test_the_registered_version_has_alias_metrics_artifacts_and_metadata(
    model_settings: Settings, trained: tuple[str, str]
) -> None:
    version, run_id = trained
    name = model_settings.mlflow.model_name
    client = MlflowClient(model_settings.mlflow.uri)
    assert "challenger" in client.get_model_version(name, version).aliases
    run = client.get_run(run_id)
    for metric in (
        "validation_average_precision",
        "test_xgboost_average_precision",
        "test_xgboost_card_precision_at_100",
        "test_logistic_average_precision",
        "test_rules_average_precision",
        "ablation_smote_validation_ap",
        "test_xgboost_ece",
        "test_xgboost_ece_alert_band",
        "test_xgboost_uncalibrated_ece",
    ):
        assert metric in run.data.metrics, metric
    # Calibration is monotone: the uncalibrated model ranks the test rows alike.
    assert run.data.metrics["test_xgboost_uncalibrated_average_precision"] == pytest.approx(
        run.data.metrics["test_xgboost_average_precision"], abs=1e-6
    )
    assert run.data.params["feature_set_version"] == FEATURE_SET_VERSION
    assert int(run.data.params["rows_train"]) > 0
    # The chosen configuration and how the final model was fitted: the search's
    # parameters, the early-stopped tree count, the training period's rows (the default).
    params = run.data.params
    for param in ("xgb_max_depth", "xgb_learning_rate", "xgb_min_child_weight", "imbalance"):
        assert params[param], param
    assert 1 <= int(params["n_trees"]) < int(params["max_rounds"])
    assert params["final_fit"] == "training-period"
    assert params["final_fit_rows"] == params["rows_train"]
    assert params["final_fit_frauds"] == params["frauds_train"]
    # The calibration map and the rows it was fitted on.
    assert float(params["calibration_a"]) > 0
    assert int(params["calibration_rows"]) > 0
    assert int(params["calibration_frauds"]) > 0
    assert params["calibration_mature_only"] in ("True", "False")
    # The row policy's account of the input (a generated history: nothing refused).
    assert run.data.params["rows_excluded"] == "0"
    assert run.data.params["rows_read"] == run.data.params["rows_total"]
    keys = [
        o["Key"]
        for page in s3_client(model_settings.s3)
        .get_paginator("list_objects_v2")
        .paginate(Bucket=model_settings.s3.mlflow_bucket, Prefix="artifacts/")
        for o in page.get("Contents", [])
    ]
    ours = [k for k in keys if run_id in k]
    for artifact in (
        "plots/pr_roc_curves.png",
        "plots/shap_summary.png",
        "plots/reliability.png",
        "report/test_report.json",
    ):
        assert any(k.endswith(artifact) for k in ours), (artifact, ours)
    assert any(k.endswith("model.ubj") for k in keys), "model file not in the bucket"
    with connect(model_settings.postgres) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT aliases, feature_set_version, threshold, metrics FROM model_metadata "
            "WHERE model_name = %s AND version = %s",
            (name, version),
        )
        aliases, fsv, threshold, metrics = cur.fetchone()
    assert aliases == ["challenger"]
    assert fsv == FEATURE_SET_VERSION
    assert 0 < threshold < 1
    assert metrics["validation_average_precision"] == pytest.approx(
        run.data.metrics["validation_average_precision"]
    )


def test_the_model_from_the_registry_reproduces_the_logged_test_ap(
    model_settings: Settings, trained: tuple[str, str], history: tuple[Path, Path]
) -> None:
    """The final model is refitted on every training row, so the figure it must
    reproduce out of sample is the test period's (the logged validation AP comes
    from the search's fold model on the most recent fold)."""
    version, run_id = trained
    loaded = registry.load_model(model_settings, version)
    assert loaded.model.get_params()["n_jobs"] == 1
    txns, labels = (pd.read_parquet(p) for p in history)
    split = TimeSplit(pd.Timestamp(START), 21, 7, 7)
    features = build_features(txns, labels)
    test = attach_labels(holdout_rows(features, labels, split), labels)
    scores = scores_of(loaded.model, test)
    ap = average_precision_score(test["is_fraud"], scores)
    logged = MlflowClient(model_settings.mlflow.uri).get_run(run_id).data.metrics
    assert ap == pytest.approx(logged["test_xgboost_average_precision"], abs=1e-9)
    # The calibration lives in the stored booster: the loaded model's scores give the
    # logged calibration error, and the stored threshold is on their scale.
    ece = expected_calibration_error(test["is_fraud"].to_numpy(), scores)
    assert ece == pytest.approx(logged["test_xgboost_ece"], abs=1e-9)
    assert np.mean(scores >= loaded.threshold) == pytest.approx(
        logged["test_xgboost_alert_rate"], abs=1e-9
    )
    assert 0.0 < logged["validation_average_precision"] <= 1.0
    params = MlflowClient(model_settings.mlflow.uri).get_run(run_id).data.params
    assert loaded.model.get_booster().num_boosted_rounds() == int(params["n_trees"])
    assert int(params["n_trees"]) == int(params["best_iteration"])


def test_a_model_of_another_feature_set_is_refused_by_its_type(
    model_settings: Settings, trained: tuple[str, str]
) -> None:
    """The registry raises ``IncompatibleModelError`` for a model whose metadata names another
    feature set, and the holder the scorer and the API share refuses it by that type and says
    so, serving nothing rather than the wrong features."""
    version, _ = trained
    loaded = registry.load_model(model_settings, version)
    registry._client(model_settings)
    with mlflow.start_run():
        info = mlflow.xgboost.log_model(
            loaded.model,
            name="model",
            metadata={
                "threshold": loaded.threshold,
                "feature_set_version": "0",
                "feature_names": loaded.feature_names,
            },
            registered_model_name=model_settings.mlflow.model_name,
        )
    stale = str(info.registered_model_version)
    with pytest.raises(registry.IncompatibleModelError, match="feature-set version '0'"):
        registry.load_model(model_settings, stale)
    client = MlflowClient(model_settings.mlflow.uri)
    client.set_registered_model_alias(model_settings.mlflow.model_name, "stale", stale)
    holder = registry_holder(model_settings, "stale", interval_s=0.0)
    assert not holder.refresh(force=True)
    assert (holder.current, holder.counts.refused) == (None, 1)
    assert holder.detail.startswith(f"refused @stale version {stale}: ")


def test_score_file_writes_one_decision_per_transaction(
    trained: tuple[str, str], history: tuple[Path, Path], tmp_path: Path
) -> None:
    version, _ = trained
    txns, labels = history
    out = tmp_path / "scores.csv"
    run_cli(
        "score-file",
        "--model",
        version,
        "--transactions",
        str(txns),
        "--labels",
        str(labels),
        "--out",
        str(out),
    )
    scored = pd.read_csv(out)
    source = pd.read_parquet(txns)
    assert list(scored.columns) == ["transaction_id", "score", "decision"]
    assert set(scored["transaction_id"]) == set(source["transaction_id"])
    assert scored["score"].between(0, 1).all()
    assert set(scored["decision"]) == {"alert", "pass"}


RULES_FILE = """\
version: parity-1
lists:
  watched_countries: [FR, DE]
rules:
  - name: big_for_card
    condition: amount > 300 and coalesce(card_amount_ratio_30d, 100) > 3
    outcome: review
  - name: watched_night
    condition: country in watched_countries and txn_is_night == 1
    outcome: decline
    priority: 5
  - name: burst
    condition: card_count_1h >= 3
    outcome: decline
  - name: sharpened
    condition: score > 0.05 and card_new_merchant_30d == 1
    outcome: review
  - name: small_known
    condition: amount < 2 and card_count_30d > 20
    outcome: approve
"""


@pytest.mark.parametrize("suffix", [".parquet", ".csv"])
def test_score_file_with_rules_decides_as_decide_does_on_the_same_rows(
    model_settings: Settings,
    trained: tuple[str, str],
    history: tuple[Path, Path],
    tmp_path: Path,
    suffix: str,
) -> None:
    version, _ = trained
    txns_path, labels_path = history
    rules_path = tmp_path / "rules.yaml"
    rules_path.write_text(RULES_FILE)
    out = tmp_path / f"scores{suffix}"
    run_cli(
        "score-file",
        "--model",
        version,
        "--transactions",
        str(txns_path),
        "--labels",
        str(labels_path),
        "--rules",
        str(rules_path),
        "--out",
        str(out),
    )
    if suffix == ".csv":
        scored = pd.read_csv(out, keep_default_na=False)
        # The model's scores are float32, which CSV writes as their shortest text: read back
        # as float32, they are the very numbers score-file decided on.
        scored["score"] = scored["score"].astype(np.float32)
    else:
        scored = pd.read_parquet(out)
    assert list(scored.columns) == [
        "transaction_id",
        "score",
        "decision",
        "outcome",
        "reason",
        "fired_rules",
        "rules_version",
    ]
    # The same rows through rules.decision.decide: the replay's features, the transactions'
    # fields and the file's scores (the model's own, checked by the test above).
    txns, labels = pd.read_parquet(txns_path), pd.read_parquet(labels_path)
    rule_set = load_rule_set(rules_path)
    rows = build_features(txns, labels).merge(
        txns.drop(columns=["event_time", "card_id"]), on="transaction_id", how="left"
    )
    rows = rows.merge(scored[["transaction_id", "score"]], on="transaction_id")
    assert len(rows) == len(scored) == len(txns)
    threshold = registry.load_model(model_settings, version).threshold
    expected = decide(rule_set, rows, threshold)
    got = scored.set_index("transaction_id").loc[rows["transaction_id"]]
    assert got["outcome"].tolist() == expected.decision.tolist()
    assert got["reason"].tolist() == expected.reason.tolist()
    fired = (
        [list(f) for f in got["fired_rules"]]
        if suffix == ".parquet"
        else [f.split(";") if f else [] for f in got["fired_rules"]]
    )
    assert fired == expected.fired_lists()
    assert set(got["rules_version"]) == {"parity-1"}
    # The rules and the model both decided somewhere: the test compares real decisions.
    assert {"approve", "review", "decline"} <= set(got["outcome"])
    assert {"model", "burst", "big_for_card"} <= set(got["reason"])
    assert (got["decision"] == "alert").sum() > 0


def _summary(result: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    """The last stdout line of a --json command."""
    summary: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return summary


@pytest.fixture(scope="module")
def rules_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("rules") / "rules.yaml"
    path.write_text(RULES_FILE)
    return path


def _period(history: tuple[Path, Path]) -> list[str]:
    """The test period of the module's training split (the evaluate and promote window)."""
    txns, labels = history
    return ["--transactions", str(txns), "--labels", str(labels), "--start", TEST_START,
            "--days", "7"]  # fmt: skip


@pytest.fixture(scope="module")
def backtested(
    trained: tuple[str, str], history: tuple[Path, Path], rules_path: Path
) -> dict[str, Any]:
    """`rules backtest --model VERSION --json` on the test period: the registry's path."""
    version, _ = trained
    return _summary(
        run_cli("rules", "backtest", "--rules", str(rules_path), "--model", version,
                *_period(history), "--json")
    )  # fmt: skip


def test_rules_backtest_with_a_registered_model_measures_the_model_s_own_scores(
    model_settings: Settings,
    trained: tuple[str, str],
    history: tuple[Path, Path],
    rules_path: Path,
    backtested: dict[str, Any],
    tmp_path: Path,
) -> None:
    """The registry's model gives the figures its own scores give through --scores (the same
    rows, the same threshold), and they are the counts taken here on the period's rows."""
    version, _ = trained
    threshold = registry.load_model(model_settings, version).threshold
    scores_path = tmp_path / "scores.parquet"
    txns_path, labels_path = history
    run_cli("score-file", "--model", version, "--transactions", str(txns_path),
            "--labels", str(labels_path), "--out", str(scores_path))  # fmt: skip
    from_file = _summary(
        run_cli("rules", "backtest", "--rules", str(rules_path), "--scores", str(scores_path),
                "--threshold", repr(threshold), *_period(history), "--json")
    )  # fmt: skip
    assert backtested["threshold"] == threshold  # the registered model's own
    for key in ("version", "rows", "frauds", "threshold", "outcomes", "rules", "totals"):
        assert backtested[key] == from_file[key], key

    # The same period's rows and the same scores, counted here.
    txns, labels = (pd.read_parquet(p) for p in history)
    split = TimeSplit(pd.Timestamp(START), 21, 7, 7)
    rows = attach_labels(holdout_rows(build_features(txns, labels), labels, split), labels)
    rows = rows.merge(pd.read_parquet(scores_path), on="transaction_id", how="left")
    fraud = rows["is_fraud"].to_numpy() == 1
    alert = rows["score"].to_numpy() >= threshold
    assert (backtested["rows"], backtested["frauds"]) == (len(rows), int(fraud.sum()))
    totals = {line["name"]: line for line in backtested["totals"]}
    model = totals["model"]
    assert model["hits"] == int(alert.sum()) > 0
    assert model["frauds"] == int((alert & fraud).sum()) > 0
    assert model["model_overlap"] == 1.0
    lines = {line["name"]: line for line in backtested["rules"]}
    for name, hit in (
        ("burst", rows["card_count_1h"].to_numpy() >= 3),
        ("sharpened", ((rows["score"] > 0.05) & (rows["card_new_merchant_30d"] == 1)).to_numpy()),
    ):
        line = lines[name]
        assert line["hits"] == int(hit.sum()) > 0, name
        assert line["frauds"] == int((hit & fraud).sum()), name
        assert line["model_overlap"] == pytest.approx((hit & alert).sum() / hit.sum()), name
        assert line["beyond_model"] == int((hit & fraud & ~alert).sum()), name
    # Every rule's overlap is a whole number of its hits, never more than the model's alerts.
    for line in backtested["rules"]:
        if line["hits"]:
            shared = line["model_overlap"] * line["hits"]
            assert shared == pytest.approx(round(shared)), line["name"]
            assert round(shared) <= model["hits"], line["name"]
    combined = totals["model + rules"]
    outcomes = backtested["outcomes"]
    assert combined["hits"] == outcomes["review"] + outcomes["decline"]
    assert sum(outcomes.values()) == len(rows)
    assert totals["model at the same alert count"]["hits"] == combined["hits"]


def test_evaluate_with_rules_reports_the_decisions_beside_the_unchanged_model_report(
    trained: tuple[str, str],
    history: tuple[Path, Path],
    rules_path: Path,
    backtested: dict[str, Any],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    version, _ = trained
    monkeypatch.setenv("COLUMNS", "200")  # the table's rows unwrapped on the CLI's stderr
    plain = _summary(run_cli("evaluate", "--model", version, *_period(history), "--json"))
    report = tmp_path / "report.json"
    result = run_cli("evaluate", "--model", version, *_period(history), "--rules",
                     str(rules_path), "--report", str(report), "--json")  # fmt: skip
    ruled = _summary(result)
    assert "rule_set" not in plain
    # The model's report is what it is without --rules.
    assert ruled["metrics"] == plain["metrics"]
    assert ruled["holdout"] == plain["holdout"]
    decided = ruled["rule_set"]
    # The same rows and decisions as `rules backtest --model` on the period.
    for key in ("version", "rows", "frauds", "threshold", "outcomes", "rules", "totals"):
        assert decided[key] == backtested[key], key
    headline_of_model = ruled["metrics"][f"model v{version}"]
    assert decided["rows"] == headline_of_model["rows"] == sum(decided["outcomes"].values())
    assert {"approve", "review", "decline"} == set(decided["outcomes"])
    assert decided["outcomes"]["review"] > 0
    totals = {line["name"]: line for line in decided["totals"]}
    # The model alone at its threshold: the figures of the model's own report.
    model = totals["model"]
    assert model["precision"] == pytest.approx(headline_of_model["precision"])
    assert model["recall"] == pytest.approx(headline_of_model["recall"])
    assert model["alert_rate"] == pytest.approx(headline_of_model["alert_rate"])
    # The set's alerts are its review and decline decisions; the budget line holds as many.
    combined = totals["model + rules"]
    assert combined["hits"] == decided["outcomes"]["review"] + decided["outcomes"]["decline"]
    assert combined["precision"] == pytest.approx(combined["frauds"] / combined["hits"])
    assert combined["recall"] == pytest.approx(combined["frauds"] / decided["frauds"])
    assert totals["model at the same alert count"]["hits"] == combined["hits"]
    # The table on the human output (stderr with --json) and the report file carry it too.
    shown = " ".join(result.stderr.split())
    assert "rule set parity-1 on" in shown
    assert "model at the same alert count" in shown
    assert "decisions (model + rules): decline" in shown
    written = json.loads(report.read_text())
    assert written["rule_set"]["outcomes"] == decided["outcomes"]
    assert set(written) == {*ruled["metrics"], "rule_set"}


def test_promotion_takes_the_first_challenger_and_refuses_a_worse_one(
    model_settings: Settings, trained: tuple[str, str], history: tuple[Path, Path]
) -> None:
    version, _ = trained
    txns_path, labels_path = history
    window = [
        "--transactions",
        str(txns_path),
        "--labels",
        str(labels_path),
        "--start",
        TEST_START,
        "--days",
        "7",
    ]
    assert "no champion yet" in run_cli("promote", *window).stdout
    assert registry.version_for_alias(model_settings, registry.CHAMPION) == version

    # A worse challenger: the same pipeline trained on labels scattered at random.
    txns, labels = (pd.read_parquet(p) for p in history)
    worse_version = register_worse_challenger(model_settings, txns, labels, START)

    refused = subprocess.run(
        [*CLI, "promote", *window], capture_output=True, text=True, timeout=600, check=False
    )
    assert refused.returncode == 0, refused.stdout + refused.stderr  # a refusal is no error
    said = " ".join(refused.stdout.split())
    assert "refused" in said
    assert "Average Precision is not higher" in said
    assert registry.version_for_alias(model_settings, registry.CHAMPION) == version
    assert registry.version_for_alias(model_settings, registry.CHALLENGER) == worse_version
    with connect(model_settings.postgres) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT version, promoted_at IS NOT NULL, aliases FROM model_metadata "
            "WHERE model_name = %s ORDER BY version",
            (model_settings.mlflow.model_name,),
        )
        rows = {v: (promoted, aliases) for v, promoted, aliases in cur.fetchall()}
    assert rows[version][0] is True
    assert "champion" in rows[version][1]
    assert rows[worse_version] == (False, ["challenger"])


def test_cold_start_registers_an_anomaly_model_that_scores_like_the_other(
    model_settings: Settings, history: tuple[Path, Path], tmp_path: Path
) -> None:
    txns, _ = history
    out = run_cli(
        "train",
        "--unsupervised",
        "--alert-rate",
        "0.01",
        "--transactions",
        str(txns),
        "--train-start",
        START.date().isoformat(),
    ).stdout
    assert "isolation_forest" in out
    loaded = registry.load_model(model_settings, "challenger")
    scores_path = tmp_path / "scores.parquet"
    run_cli(
        "score-file",
        "--model",
        "challenger",
        "--transactions",
        str(txns),
        "--out",
        str(scores_path),
    )
    scored = pd.read_parquet(scores_path)
    assert scored["score"].between(0, 1).all()
    alert_rate = (scored["decision"] == "alert").mean()
    assert 0.001 < alert_rate < 0.05  # 1 % on the training period; test period drifts a little
    assert 0.0 < loaded.threshold < 1.0
    assert type(loaded.model).__name__ == "AnomalyScorer"
