"""Retraining from PostgreSQL, as the DAG runs it: extract -> train -> promote.

Against the real PostgreSQL (a scratch database the CLI is pointed at), MinIO
(the training set under s3://), MLflow and Kafka (``model_events`` on a scratch
topic). A labelled history is written into ``transactions_raw`` and ``labels``;
the extracted set is point in time, training and promotion read it from S3, the
promotion is recorded once per request key and published once, and a worse
challenger is refused without a trace.
"""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import jsonschema
import numpy as np
import pandas as pd
import pytest
from confluent_kafka import Consumer, TopicPartition
from psycopg2.extras import execute_values

from fraudstream.adapters import registry
from fraudstream.adapters.kafka import consumer_config, create_scratch_topic, delete_topic
from fraudstream.adapters.object_store import s3_client
from fraudstream.adapters.postgres import connect, migrate, scratch_database, upsert_labels
from fraudstream.adapters.training_sets import load
from fraudstream.features.catalogue import FEATURE_SET_VERSION
from fraudstream.generator import GeneratorConfig, generate
from fraudstream.model.events import model_event_schema
from fraudstream.model.experiment import run_experiment
from fraudstream.model.split import TimeSplit
from fraudstream.model.training_set import EXIT_TOO_FEW_LABELS
from fraudstream.schema import Label, field_names
from fraudstream.settings import Settings, load_settings
from tests.integration.conftest import CLI, run_cli

pytestmark = [
    pytest.mark.kafka,
    pytest.mark.mlflow,
    pytest.mark.postgres,
    pytest.mark.s3,
    pytest.mark.timeout(1200),
]

START = datetime(2026, 2, 1, tzinfo=UTC)
AS_OF = START + timedelta(days=36)  # window [START + 1 d, AS_OF): 21 train, 7 delay, 7 test


def _json_line(result: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    lines = [line for line in result.stdout.splitlines() if line.strip()]
    assert len(lines) == 1, result.stdout  # --json: stdout holds the summary line only
    document: dict[str, Any] = json.loads(lines[0])
    return document


@pytest.fixture(scope="module")
def env(settings: Settings) -> Iterator[Settings]:
    """A scratch database, model name and events topic of this module's own, seen by the CLI."""
    topic = create_scratch_topic(settings.kafka, "test-model-events")
    with (
        scratch_database(settings.postgres, "test") as database,
        pytest.MonkeyPatch.context() as mp,
    ):
        mp.setenv("FRAUDSTREAM_POSTGRES_DATABASE", database.database)
        mp.setenv("FRAUDSTREAM_MLFLOW_MODEL_NAME", f"fraud-detector-test-{uuid.uuid4().hex[:8]}")
        mp.setenv("FRAUDSTREAM_TEST_EVENTS_TOPIC", topic)
        migrate(database)
        yield load_settings()
    delete_topic(settings.kafka, topic)


@pytest.fixture(scope="module")
def history(env: Settings) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A generated history in transactions_raw and labels, plus one label filed after AS_OF."""
    config = GeneratorConfig(seed=11, start=START, days=37, customers=300, merchants=300)
    data = generate(config)
    txns, labels = data.transactions.to_pandas(), data.labels.to_pandas()
    columns = field_names("transaction")
    rows = [
        tuple(None if pd.isna(v) else v for v in record)
        for record in txns[list(columns)].itertuples(index=False)
    ]
    late = txns[(txns["event_time"] < AS_OF - timedelta(days=2))]
    late = late[~late["transaction_id"].isin(labels["transaction_id"])].iloc[0]
    with connect(env.postgres) as conn, conn.cursor() as cur:
        execute_values(cur, f"INSERT INTO transactions_raw ({', '.join(columns)}) VALUES %s", rows)
        upsert_labels(
            conn,
            [
                Label(r.transaction_id, bool(r.is_fraud), r.label_time, r.source, r.fraud_scenario)
                for r in labels.itertuples(index=False)
            ]
            + [Label(late["transaction_id"], True, AS_OF + timedelta(hours=1), "analyst")],
        )
    return txns, labels.assign(late_id=late["transaction_id"])


@pytest.fixture(scope="module")
def extracted(
    env: Settings, history: tuple[pd.DataFrame, pd.DataFrame]
) -> tuple[str, dict[str, Any]]:
    uri = f"s3://{env.s3.dataset_bucket}/test-training-sets/{uuid.uuid4().hex[:8]}/as-of"
    out = run_cli("extract-training-set", "--as-of", AS_OF.isoformat(), "--output", uri, "--json")
    return uri, _json_line(out)


def _keys(settings: Settings, uri: str) -> dict[str, str]:
    bucket, _, prefix = uri.removeprefix("s3://").partition("/")
    listing = s3_client(settings.s3).list_objects_v2(Bucket=bucket, Prefix=prefix + "/")
    return {o["Key"]: o["ETag"] for o in listing.get("Contents", [])}


def test_the_extracted_set_is_point_in_time_and_idempotent(
    env: Settings,
    history: tuple[pd.DataFrame, pd.DataFrame],
    extracted: tuple[str, dict[str, Any]],
) -> None:
    txns, labels = history
    uri, manifest = extracted
    window = txns[(txns["event_time"] >= AS_OF - timedelta(days=35)) & (txns["event_time"] < AS_OF)]
    known = labels[
        labels["transaction_id"].isin(window["transaction_id"]) & (labels["label_time"] <= AS_OF)
    ]
    assert manifest["transactions"] == len(window)
    assert manifest["labels"] == len(known)
    assert manifest["frauds"] == int(known["is_fraud"].sum())
    assert manifest["label_cutoff"] == AS_OF.isoformat()
    assert len(labels) > len(known)  # the generator files some labels after AS_OF
    loaded = load(env, uri)
    assert labels["late_id"].iloc[0] not in set(loaded.labels["transaction_id"])
    assert (loaded.labels["label_time"] <= pd.Timestamp(AS_OF)).all()
    assert set(loaded.transactions["transaction_id"]) == set(window["transaction_id"])

    before = _keys(env, uri)
    assert sorted(k.rsplit("/", 1)[1] for k in before) == [
        "labels.parquet",
        "manifest.json",
        "transactions.parquet",
    ]
    again = run_cli("extract-training-set", "--as-of", AS_OF.isoformat(), "--output", uri)
    assert "transactions" in again.stdout
    assert _keys(env, uri) == before  # same keys, same bytes


def test_a_window_without_enough_labels_exits_with_the_skip_status(env: Settings) -> None:
    early = subprocess.run(
        [
            *CLI,
            "extract-training-set",
            "--as-of",
            (START + timedelta(days=2)).isoformat(),
            "--output",
            f"s3://{env.s3.dataset_bucket}/test-training-sets/empty",
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert early.returncode == EXIT_TOO_FEW_LABELS, early.stdout + early.stderr
    summary = _json_line(early)
    assert summary["skipped"] is True
    assert "--min-labels" in summary["reason"]


def _events(settings: Settings) -> list[tuple[bytes, dict[str, Any]]]:
    """Every message of the module's events topic, from the beginning."""
    topic = events_topic()
    consumer = Consumer(consumer_config(settings.kafka, f"test-{uuid.uuid4().hex[:8]}"))
    try:
        metadata = consumer.list_topics(topic, timeout=10).topics[topic]
        consumer.assign([TopicPartition(topic, p, 0) for p in metadata.partitions])
        found = []
        idle = 0
        while idle < 3:
            message = consumer.poll(1.0)
            if message is None:
                idle += 1
                continue
            assert message.error() is None, message.error()
            found.append((message.key(), json.loads(message.value())))
        return found
    finally:
        consumer.close()


def events_topic() -> str:
    """The module's scratch events topic (set by the ``env`` fixture)."""
    return os.environ["FRAUDSTREAM_TEST_EVENTS_TOPIC"]


def _promotions(settings: Settings) -> list[tuple[str, str, str | None, str]]:
    with connect(settings.postgres) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT request_key, version, previous_version, decided_by FROM model_promotions "
            "ORDER BY id"
        )
        return [tuple(row) for row in cur.fetchall()]  # type: ignore[misc]


def test_train_and_promote_from_the_extracted_set(
    env: Settings,
    history: tuple[pd.DataFrame, pd.DataFrame],
    extracted: tuple[str, dict[str, Any]],
) -> None:
    uri, _ = extracted
    trained = _json_line(
        run_cli(
            "train", "--training-set", uri, "--candidates", "2", "--no-smote", "--json", timeout=900
        )
    )
    version = trained["version"]
    assert trained["alias"] == "challenger"
    assert version
    assert trained["lineage"]["training_set"] == uri
    assert trained["metrics"]["xgboost"]["rows"] > 0
    assert registry.version_for_alias(env, registry.CHALLENGER) == version

    topic = events_topic()
    promote = ["promote", "--training-set", uri, "--events-topic", topic, "--json"]
    first = _json_line(run_cli(*promote, "--request-key", "dag-run-1", "--decided-by", "airflow"))
    assert first["decision"] == "promoted", first
    assert first["previous_version"] is None
    assert registry.version_for_alias(env, registry.CHAMPION) == version
    assert _promotions(env) == [("dag-run-1", version, None, "airflow")]
    events = _events(env)
    assert len(events) == 1
    key, event = events[0]
    assert key == env.mlflow.model_name.encode()
    jsonschema.validate(event, model_event_schema(), format_checker=jsonschema.FormatChecker())
    assert event == first["event"]
    assert (event["alias"], event["version"], event["feature_set_version"]) == (
        "champion",
        version,
        FEATURE_SET_VERSION,
    )
    assert event["threshold"] == pytest.approx(trained["threshold"])
    with connect(env.postgres) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT aliases, promoted_at IS NOT NULL FROM model_metadata "
            "WHERE model_name = %s AND version = %s",
            (env.mlflow.model_name, version),
        )
        assert cur.fetchone() == (["challenger", "champion"], True)

    retried = _json_line(run_cli(*promote, "--request-key", "dag-run-1"))
    assert retried["decision"] == "already_promoted"
    assert len(_promotions(env)) == 1
    assert len(_events(env)) == 1

    # A worse challenger: the same pipeline on labels scattered at random.
    txns, labels = history
    rng = np.random.default_rng(0)
    noise = labels.assign(transaction_id=rng.permutation(txns["transaction_id"])[: len(labels)])
    worse = run_experiment(
        txns,
        noise,
        TimeSplit(pd.Timestamp(START), 21, 7, 7),
        candidates=1,
        arms=("scale_pos_weight",),
    )
    _, worse_version = registry.log_experiment(env, worse, "test")
    refused = _json_line(run_cli(*promote, "--request-key", "dag-run-2"))
    assert refused["decision"] == "refused"
    assert "Average Precision is not higher" in refused["reason"]
    assert refused["version"] == worse_version
    assert refused["event"] is None
    assert registry.version_for_alias(env, registry.CHAMPION) == version
    assert len(_promotions(env)) == 1
    assert len(_events(env)) == 1
    strict = subprocess.run(
        [*CLI, *promote, "--request-key", "dag-run-3", "--require-promotion"],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert strict.returncode == 3, strict.stdout + strict.stderr
