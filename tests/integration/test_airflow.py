"""The feedback loop through the running Airflow: retrain, then drift triggers retraining.

Airflow is started by the platform (``platform up --with-airflow``) with this module's own
scratch database and model name in its environment, so its tasks (the real CLI as local
processes) see only this module's data. DAG runs are triggered through Airflow's REST API,
as a user or another system would, and followed until they finish.

1. A generated, labelled history in transactions_raw and labels, and a first @champion
   fitted on labels scattered at random, served by a running scorer (``fraudstream score``,
   a subprocess with the module's database and model name). fraud_retrain with the history's
   end as cutoff extracts, trains, evaluates and promotes: a new version exists, it beat the
   first one and is @champion, and the run's training profile is logged.
2. The scorer, not restarted, loads the promoted version: the rows it scored before the
   promote task started carry the first version, every transaction sent after the promotion
   is stored with the new one.
3. Scored rows of the champion on the history's last day, and a shifted copy (amounts
   multiplied, features rebuilt with the same feature code) in a later window; fraud_monitor
   on the shifted window records PSI breaches in monitoring_metrics and creates a
   fraud_retrain run keyed by the window.
"""

from __future__ import annotations

import json
import signal
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from mlflow.tracking import MlflowClient
from psycopg2.extras import execute_values

from fraudstream.adapters import registry
from fraudstream.adapters.kafka import delete_topic
from fraudstream.adapters.partitions import ensure_days, utc_day
from fraudstream.adapters.postgres import connect
from fraudstream.features.catalogue import FEATURE_SET_VERSION, feature_names
from fraudstream.features.replay import build_features
from fraudstream.model.experiment import scores_of
from fraudstream.monitoring.store import champion_profile
from fraudstream.platform.runtime import EmbeddedPlatform
from fraudstream.services.feed import StreamTopics, replay
from fraudstream.settings import Settings, load_settings
from tests.integration.conftest import run_cli, scratch_env
from tests.integration.history_support import generated_history, scattered_labels, store_history
from tests.integration.scoring_support import (
    History,
    ScorerProcess,
    register_model,
    scored_count,
    scorer_args,
    scorer_env,
    scratch_topics,
    wait_until,
)
from tests.integration.scoring_support import history as scorer_history

pytestmark = pytest.mark.timeout(1500)

START = datetime(2031, 2, 1, tzinfo=UTC)
AS_OF = START + timedelta(days=36)
SHIFTED_END = AS_OF + timedelta(days=2)


class Airflow:
    """The Airflow REST API (v2) with the platform's generated admin login."""

    def __init__(self, url: str, user: str, password: str) -> None:
        token = httpx.post(
            f"{url}/auth/token", json={"username": user, "password": password}, timeout=30
        )
        token.raise_for_status()
        self.http = httpx.Client(
            base_url=f"{url}/api/v2",
            headers={"Authorization": f"Bearer {token.json()['access_token']}"},
            timeout=30,
        )

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self.http.request(method, path, **kwargs)
        assert response.status_code < 300, f"{method} {path}: {response.text}"
        return response.json() if response.content else None

    def wait_for_dag(self, dag_id: str, timeout_s: float = 180) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.http.get(f"/dags/{dag_id}").status_code == 200:
                return
            time.sleep(2)
        pytest.fail(f"Airflow did not parse {dag_id} within {timeout_s:.0f}s")

    def set_paused(self, dag_id: str, paused: bool) -> None:
        self.call("PATCH", f"/dags/{dag_id}", json={"is_paused": paused})

    def trigger(self, dag_id: str, conf: dict[str, Any]) -> str:
        run_id = f"test__{uuid.uuid4().hex[:10]}"
        body = {"dag_run_id": run_id, "logical_date": None, "conf": conf}
        self.call("POST", f"/dags/{dag_id}/dagRuns", json=body)
        return run_id

    def wait_for_run(self, dag_id: str, run_id: str, timeout_s: float) -> str:
        deadline = time.monotonic() + timeout_s
        state = "queued"
        while time.monotonic() < deadline:
            state = self.call("GET", f"/dags/{dag_id}/dagRuns/{run_id}")["state"]
            if state in ("success", "failed"):
                return str(state)
            time.sleep(3)
        pytest.fail(f"{dag_id} run {run_id} still {state} after {timeout_s:.0f}s")

    def fail_active_runs(self, dag_id: str) -> None:
        """Runs left over from an interrupted session would hold ``max_active_runs``."""
        for state in ("queued", "running"):
            found = self.call("GET", f"/dags/{dag_id}/dagRuns", params={"state": state})
            for run in found["dag_runs"]:
                path = f"/dags/{dag_id}/dagRuns/{run['dag_run_id']}"
                self.call("PATCH", path, json={"state": "failed"})

    def task_states(self, dag_id: str, run_id: str) -> dict[str, str]:
        found = self.call("GET", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances")
        return {t["task_id"]: t["state"] for t in found["task_instances"]}

    def task_started(self, dag_id: str, run_id: str, task_id: str) -> datetime:
        found = self.call("GET", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}")
        return datetime.fromisoformat(found["start_date"])

    def runs(self, dag_id: str) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = self.call("GET", f"/dags/{dag_id}/dagRuns")["dag_runs"]
        return found


def _stop_airflow() -> None:
    """Stop Airflow's components (only them): the next `up` starts them with this env."""
    platform = EmbeddedPlatform(load_settings(), with_airflow=True)
    platform._stop_stage(platform.airflow.services, lambda _msg: None)


@pytest.fixture(scope="module")
def env(settings: Settings) -> Iterator[Settings]:
    """A scratch database and model name of this module's own, seen by Airflow's tasks."""
    with scratch_env(
        settings,
        FRAUDSTREAM_MLFLOW_MODEL_NAME=f"fraud-detector-af-{uuid.uuid4().hex[:8]}",
        # A failing task should fail the test now, not after retries minutes apart.
        FRAUDSTREAM_DAG_RETRIES="0",
    ) as scratch:
        _stop_airflow()
        try:
            yield scratch
        finally:
            _stop_airflow()


@pytest.fixture(scope="module")
def airflow(env: Settings) -> Airflow:
    status = json.loads(run_cli("platform", "up", "--with-airflow", "--json", timeout=900).stdout)
    assert status["healthy"], status
    assert "airflow_ui" in status["urls"]
    platform = EmbeddedPlatform(env, with_airflow=True)
    client = Airflow(status["urls"]["airflow_ui"], *platform.airflow.login())
    for dag_id in ("fraud_retrain", "fraud_monitor"):
        client.wait_for_dag(dag_id)
        client.fail_active_runs(dag_id)
    return client


def test_status_shows_the_ui_and_its_generated_login(airflow: Airflow, env: Settings) -> None:
    shown = run_cli("platform", "status").stdout
    user, password = EmbeddedPlatform(env, with_airflow=True).airflow.login()
    url = status_url()
    assert f"Airflow UI:     {url} (user {user}, password {password})" in shown
    for service in ("airflow-api-server", "airflow-scheduler", "airflow-dag-processor"):
        assert service in shown
    refused = httpx.post(
        f"{url}/auth/token", json={"username": user, "password": "wrong"}, timeout=30
    )
    assert refused.status_code == 401


def status_url() -> str:
    """The Airflow UI's URL as `platform status --json` reports it."""
    status = json.loads(run_cli("platform", "status", "--json").stdout)
    return str(status["urls"]["airflow_ui"])


@pytest.fixture(scope="module")
def history(env: Settings) -> tuple[pd.DataFrame, pd.DataFrame]:
    """37 generated days in transactions_raw and labels."""
    txns, labels = generated_history(seed=23, start=START, days=37)
    store_history(env, txns, labels)
    return txns, labels


def _stop(scorer: ScorerProcess) -> None:
    """SIGTERM: the scorer stops between micro-batches (a no-op once it has stopped)."""
    if scorer.alive():
        scorer.proc.send_signal(signal.SIGTERM)
        scorer.wait(120)


@dataclass(frozen=True)
class Serving:
    """A scorer process started before the retraining, and the transactions sent to it:
    ``first_ids`` as it started, ``later`` to send once the retraining has promoted."""

    scorer: ScorerProcess
    topics: dict[str, str]
    first_version: str
    first_ids: list[str]
    later: pa.Table


def _stored(env: Settings, ids: list[str]) -> list[tuple[str, str, datetime]]:
    """(model_name, model_version, scored_at) of the stored rows of ``ids``."""
    with connect(env.postgres) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT model_name, model_version, scored_at FROM transactions_with_score "
            "WHERE transaction_id = ANY(%s)",
            (ids,),
        )
        return [(name, version, at) for name, version, at in cur.fetchall()]


@pytest.fixture(scope="module", autouse=True)
def serving(
    env: Settings,
    history: tuple[pd.DataFrame, pd.DataFrame],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Serving]:
    """A first @champion that must lose (fitted on three days of labels scattered at random),
    and a scorer serving it on fresh topics, a first day of transactions sent to it.

    Started first (autouse), so the scorer's Spark start and first micro-batch overlap
    Airflow's start and the retraining instead of adding to the module's time. It gets the
    module's database and model name explicitly: its rows must land where the assertions
    read them, not in the platform's default ``fraud`` database that the session's
    ``settings`` fixture points at.
    """
    txns, labels = history
    early = txns[txns["event_time"] < START + timedelta(days=3)]
    early_labels = labels[labels["transaction_id"].isin(early["transaction_id"])]
    noise = History(pa.table({}), early, scattered_labels(early, early_labels), pa.table({}))
    first_version = register_model(env, noise, threshold=0.5)

    # Two days of their own (ids unique to this run, event times years before the
    # monitored windows): the first sent now, the second after the promotion.
    stream = scorer_history(seed=31, days=2, customers=60)
    cut = pd.Timestamp(stream.transactions["event_time"].min()).floor("D") + pd.Timedelta(days=1)
    is_first = (stream.transactions["event_time"] < cut).to_numpy()
    topics = scratch_topics(env, "airflow-scorer")
    checkpoint = f"s3a://{env.s3.checkpoint_bucket}/test/{uuid.uuid4().hex[:10]}"
    scorer = ScorerProcess(
        # A trigger of 3 s: the scorer mostly waits for the retraining, on 2 shared cores.
        scorer_args(
            topics,
            checkpoint,
            "--reload-interval",
            "2",
            "--no-parquet",
            "--no-online-store",
            trigger_s=3,
        ),
        scorer_env(env.mlflow.model_name, FRAUDSTREAM_POSTGRES_DATABASE=env.postgres.database),
        tmp_path_factory.mktemp("scorer") / "scorer.log",
    )
    try:
        source = StreamTopics(transactions=topics["source"])
        replay(env.kafka, stream.table.filter(pa.array(is_first)), None, topics=source)
        first_ids = stream.transactions.loc[is_first, "transaction_id"].astype(str).tolist()
        yield Serving(
            scorer, topics, first_version, first_ids, stream.table.filter(pa.array(~is_first))
        )
    finally:
        _stop(scorer)
        for name in topics.values():
            delete_topic(env.kafka, name)


@pytest.fixture(scope="module")
def retrained(airflow: Airflow, env: Settings, history: Any, serving: Serving) -> tuple[str, str]:
    # The scorer's first rows must exist before @champion can move, whatever the machine's
    # speed: usually they already do (its start overlapped Airflow's), so this costs nothing.
    wait_until(
        lambda: scored_count(env, serving.first_ids) > 0,
        600,
        "the scorer's first rows, before retraining",
        serving.scorer,
    )
    airflow.set_paused("fraud_retrain", False)
    conf = {"as_of": AS_OF.isoformat(), "candidates": 2, "smote": False, "reason": "test"}
    run_id = airflow.trigger("fraud_retrain", conf)
    state = airflow.wait_for_run("fraud_retrain", run_id, timeout_s=1200)
    assert state == "success", airflow.task_states("fraud_retrain", run_id)
    airflow.set_paused("fraud_retrain", True)
    return run_id, str(registry.version_for_alias(env, registry.CHAMPION))


def test_a_retrain_run_registers_and_promotes_a_version(
    airflow: Airflow, env: Settings, serving: Serving, retrained: tuple[str, str]
) -> None:
    run_id, champion = retrained
    states = airflow.task_states("fraud_retrain", run_id)
    assert states == {
        "extract_training_set": "success",
        "train": "success",
        "evaluate": "success",
        "promote": "success",
    }
    assert champion != "None"
    assert registry.version_for_alias(env, registry.CHALLENGER) == champion
    # Registered under the run's key: a retried train task reuses this version.
    tags = MlflowClient(env.mlflow.uri).get_model_version(env.mlflow.model_name, champion).tags
    assert tags[registry.RUN_KEY_TAG] == "fraud_retrain/20310309T000000Z"
    with connect(env.postgres) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT version, previous_version, decided_by FROM model_promotions "
            "WHERE request_key = %s",
            ("fraud_retrain/20310309T000000Z",),
        )
        assert cur.fetchall() == [(champion, serving.first_version, "airflow:fraud_retrain")]
        cur.execute(
            "SELECT aliases FROM model_metadata WHERE model_name = %s AND version = %s",
            (env.mlflow.model_name, champion),
        )
        assert "champion" in cur.fetchone()[0]
    version, profile = champion_profile(env)
    assert version == champion
    assert set(profile.columns) == {*feature_names(), "score"}
    assert profile.feature_set_version == FEATURE_SET_VERSION


def test_a_running_scorer_switches_to_the_promoted_version(
    airflow: Airflow, env: Settings, serving: Serving, retrained: tuple[str, str]
) -> None:
    run_id, champion = retrained
    name, first = env.mlflow.model_name, serving.first_version
    assert champion != first
    switched = f"@champion: now serving version {champion} (was {first})"
    wait_until(
        lambda: switched in serving.scorer.output(),
        120,
        "the scorer to load the promoted version",
        serving.scorer,
    )
    wait_until(
        lambda: scored_count(env, serving.first_ids) == len(serving.first_ids),
        120,
        "the transactions sent as the scorer started",
        serving.scorer,
    )
    # @champion cannot have moved before the promote task started: every row scored
    # earlier (some were, see ``retrained``) carries the first version.
    promote_started = airflow.task_started("fraud_retrain", run_id, "promote")
    first_rows = _stored(env, serving.first_ids)
    early = [(n, v) for n, v, at in first_rows if at < promote_started]
    assert early, f"no row scored before the promote task started at {promote_started}"
    assert set(early) == {(name, first)}

    source = StreamTopics(transactions=serving.topics["source"])
    replay(env.kafka, serving.later, None, topics=source)
    later_ids = [str(i) for i in serving.later.column("transaction_id").to_pylist()]
    wait_until(
        lambda: scored_count(env, later_ids) == len(later_ids),
        300,
        "the transactions sent after the promotion",
        serving.scorer,
    )
    assert {(n, v) for n, v, _ in _stored(env, later_ids)} == {(name, champion)}
    assert serving.scorer.alive(), "no restart: the same process served both versions"
    _stop(serving.scorer)  # its idle micro-batches would slow the rest of the module


def _scored_rows(env: Settings, txns: pd.DataFrame, labels: pd.DataFrame) -> list[tuple[Any, ...]]:
    """transactions_with_score rows of the champion, features from the one feature code."""
    loaded = registry.load_model(env, registry.CHAMPION)
    features = build_features(txns, labels)
    scores = scores_of(loaded.model, features)
    amounts = txns.set_index("transaction_id")["amount"]
    rows = []
    for i, row in enumerate(features.itertuples(index=False)):
        doc = {
            name: (None if np.isnan(v) else float(v))
            for name, v in zip(feature_names(), row[3:], strict=True)
        }
        rows.append(
            (
                row.transaction_id,
                row.event_time.to_pydatetime(),
                row.card_id,
                "m",
                float(amounts[row.transaction_id]),
                float(scores[i]),
                loaded.threshold,
                bool(scores[i] >= loaded.threshold),
                env.mlflow.model_name,
                loaded.version,
                FEATURE_SET_VERSION,
                json.dumps(doc),
            )
        )
    return rows


def _insert_scored(env: Settings, rows: list[tuple[Any, ...]]) -> None:
    with connect(env.postgres) as conn, conn.cursor() as cur:
        ensure_days(cur, {utc_day(r[1]) for r in rows})
        execute_values(
            cur,
            """INSERT INTO transactions_with_score (transaction_id, event_time, card_id,
                   merchant_id, amount, score, threshold, is_alert, model_name, model_version,
                   feature_set_version, features) VALUES %s
               ON CONFLICT (transaction_id, event_time) DO NOTHING""",
            rows,
        )


def test_drift_is_measured_and_triggers_retraining(
    airflow: Airflow,
    env: Settings,
    history: tuple[pd.DataFrame, pd.DataFrame],
    retrained: tuple[str, str],
) -> None:
    txns, labels = history
    last_day = txns[txns["event_time"] >= AS_OF - timedelta(days=1)].copy()
    last_day = last_day[last_day["event_time"] < AS_OF]
    shifted = last_day.assign(
        amount=last_day["amount"] * 8,
        event_time=last_day["event_time"] + timedelta(days=2),
        transaction_id=last_day["transaction_id"] + "-s",
    )
    before = txns[txns["event_time"] < AS_OF]
    _insert_scored(env, _scored_rows(env, before, labels)[-len(last_day) :])
    shifted_history = pd.concat([before, shifted])
    _insert_scored(env, _scored_rows(env, shifted_history, labels)[-len(shifted) :])

    # The same window twice through the CLI: stored once (upserts), the score stable.
    window = ["--window-hours", "24", "--min-rows", "100", "--json"]
    calm = json.loads(run_cli("monitor", "--window-end", AS_OF.isoformat(), *window).stdout)
    again = json.loads(run_cli("monitor", "--window-end", AS_OF.isoformat(), *window).stdout)
    assert calm["metrics"] == again["metrics"]

    conf = {"as_of": SHIFTED_END.isoformat(), "window_hours": 24.0, "min_rows": 100}
    airflow.set_paused("fraud_monitor", False)
    run_id = airflow.trigger("fraud_monitor", conf)
    assert airflow.wait_for_run("fraud_monitor", run_id, timeout_s=600) == "success"
    airflow.set_paused("fraud_monitor", True)
    assert airflow.task_states("fraud_monitor", run_id) == {
        "monitor": "success",
        "breach_gate": "success",
        "trigger_retrain": "success",
    }
    with connect(env.postgres) as conn, conn.cursor() as cur:
        cur.execute(
            """SELECT metric, value, breached FROM monitoring_metrics
               WHERE model_name = %s AND window_end = %s""",
            (env.mlflow.model_name, SHIFTED_END),
        )
        stored = {metric: (value, breached) for metric, value, breached in cur.fetchall()}
        cur.execute(
            "SELECT count(*) FROM monitoring_metrics WHERE model_name = %s AND window_end = %s",
            (env.mlflow.model_name, AS_OF),
        )
        assert cur.fetchone()[0] == len(calm["metrics"])
    assert stored["psi_txn_amount"][1] is True
    assert stored["psi_txn_amount"][0] > 0.2
    assert stored["psi_score"][0] > calm["metrics"]["psi_score"]
    assert stored["scored_rows"][0] == len(shifted)

    drift_runs = [r for r in airflow.runs("fraud_retrain") if r["dag_run_id"].startswith("drift__")]
    assert [r["dag_run_id"] for r in drift_runs] == ["drift__20310311T000000Z"]
    assert drift_runs[0]["conf"]["as_of"] == SHIFTED_END.isoformat()
    airflow.call("DELETE", f"/dags/fraud_retrain/dagRuns/{drift_runs[0]['dag_run_id']}")
