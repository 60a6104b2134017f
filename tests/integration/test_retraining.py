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
import pandas as pd
import pytest
from confluent_kafka import Consumer, TopicPartition
from mlflow.tracking import MlflowClient

from fraudstream.adapters import registry
from fraudstream.adapters.kafka import consumer_config, create_scratch_topic, delete_topic
from fraudstream.adapters.object_store import s3_client
from fraudstream.adapters.postgres import connect
from fraudstream.features.catalogue import FEATURE_SET_VERSION
from fraudstream.model.events import model_event_schema
from fraudstream.model.training_set import EXIT_TOO_FEW_LABELS
from fraudstream.schema import Label
from fraudstream.settings import Settings
from fraudstream.training_sets import load
from tests.integration.conftest import CLI, run_cli, scratch_env
from tests.integration.history_support import (
    generated_history,
    register_worse_challenger,
    store_history,
)

pytestmark = pytest.mark.timeout(1200)

START = datetime(2026, 2, 1, tzinfo=UTC)
AS_OF = START + timedelta(days=36)  # window [START + 1 d, AS_OF): 21 train, 7 delay, 7 test
# Run keys of this module's own: the training runs of every model share one MLflow experiment.
TRAIN_KEY = f"fraud_retrain/test-{uuid.uuid4().hex[:8]}"
WORSE_KEY = f"fraud_retrain/test-worse-{uuid.uuid4().hex[:8]}"
TRAIN = ("train", "--no-smote", "--training-set")


def _json_line(result: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    lines = [line for line in result.stdout.splitlines() if line.strip()]
    assert len(lines) == 1, result.stdout  # --json: stdout holds the summary line only
    document: dict[str, Any] = json.loads(lines[0])
    return document


@pytest.fixture(scope="module")
def env(settings: Settings) -> Iterator[Settings]:
    """A scratch database, model name and events topic of this module's own, seen by the CLI."""
    topic = create_scratch_topic(settings.kafka, "test-model-events")
    with scratch_env(
        settings,
        FRAUDSTREAM_MLFLOW_MODEL_NAME=f"fraud-detector-test-{uuid.uuid4().hex[:8]}",
        FRAUDSTREAM_TEST_EVENTS_TOPIC=topic,
    ) as scratch:
        yield scratch
    delete_topic(settings.kafka, topic)


@pytest.fixture(scope="module")
def history(env: Settings) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A generated history in transactions_raw and labels, plus one label filed after AS_OF."""
    txns, labels = generated_history(seed=11, start=START, days=37)
    late = txns[(txns["event_time"] < AS_OF - timedelta(days=2))]
    late = late[~late["transaction_id"].isin(labels["transaction_id"])].iloc[0]
    store_history(
        env,
        txns,
        labels,
        [Label(late["transaction_id"], True, AS_OF + timedelta(hours=1), "analyst")],
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
        run_cli(*TRAIN, uri, "--candidates", "2", "--run-key", TRAIN_KEY, "--json", timeout=900)
    )
    version = trained["version"]
    assert trained["alias"] == "challenger"
    assert (trained["run_key"], trained["reused"]) == (TRAIN_KEY, False)
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
    worse_version = register_worse_challenger(env, txns, labels, START, run_key=WORSE_KEY)
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


def _versions(settings: Settings) -> list[int]:
    client = MlflowClient(settings.mlflow.uri)
    found = client.search_model_versions(f"name = '{settings.mlflow.model_name}'")
    return sorted(int(v.version) for v in found)


def _metadata(settings: Settings, version: str) -> tuple[str, list[str], float] | None:
    """(run_id, aliases, threshold) of the version's ``model_metadata`` row."""
    with connect(settings.postgres) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT run_id, aliases, threshold FROM model_metadata "
            "WHERE model_name = %s AND version = %s",
            (settings.mlflow.model_name, version),
        )
        row = cur.fetchone()
    return None if row is None else (row[0], row[1], float(row[2]))


def test_a_retried_train_reuses_its_version_and_finishes_what_a_crash_left(
    env: Settings, extracted: tuple[str, dict[str, Any]]
) -> None:
    """`train --run-key`, as the DAG's retry of a train task runs it (after the test above:
    the good version is champion, the worse one challenger)."""
    uri, _ = extracted
    name = env.mlflow.model_name
    client = MlflowClient(env.mlflow.uri)
    registered = _versions(env)
    champion = registry.version_for_alias(env, registry.CHAMPION)
    worse = registry.version_for_alias(env, registry.CHALLENGER)
    assert champion is not None
    assert worse not in (None, champion)

    retried = run_cli(*TRAIN, uri, "--candidates", "1", "--run-key", TRAIN_KEY, "--json")
    again = _json_line(retried)
    assert "reused as @challenger, nothing trained" in " ".join(retried.stderr.split())
    assert (again["version"], again["reused"], again["alias"]) == (champion, True, "challenger")
    assert again["run_id"] == client.get_model_version(name, champion).run_id
    assert again["lineage"]["training_set"] == uri
    assert again["metrics"]["xgboost"]["rows"] > 0
    assert _versions(env) == registered  # nothing registered
    assert registry.version_for_alias(env, registry.CHALLENGER) == champion  # moved back
    recorded = _metadata(env, champion)
    assert recorded is not None
    assert recorded[1] == ["challenger", "champion"]
    assert again["threshold"] == pytest.approx(recorded[2])

    # An attempt that died after registering its version, before tagging it, moving
    # @challenger or recording it: the retry finishes those steps and trains nothing.
    client.delete_model_version_tag(name, worse, registry.RUN_KEY_TAG)
    client.delete_model_version_tag(name, worse, "threshold")
    with connect(env.postgres) as conn, conn.cursor() as cur:
        cur.execute(
            "DELETE FROM model_metadata WHERE model_name = %s AND version = %s", (name, worse)
        )
    assert _metadata(env, worse) is None
    finished = _json_line(run_cli(*TRAIN, uri, "--run-key", WORSE_KEY, "--json"))
    assert (finished["version"], finished["reused"]) == (worse, True)
    assert _versions(env) == registered
    assert registry.version_for_alias(env, registry.CHALLENGER) == worse
    tags = client.get_model_version(name, worse).tags
    assert tags[registry.RUN_KEY_TAG] == WORSE_KEY
    assert float(tags["threshold"]) == pytest.approx(finished["threshold"])
    assert _metadata(env, worse) == (
        finished["run_id"],
        ["challenger"],
        pytest.approx(finished["threshold"]),
    )


def test_an_override_promotes_past_the_gate_and_says_so(
    env: Settings, extracted: tuple[str, dict[str, Any]]
) -> None:
    """An operator's override moves @champion to the worse challenger the gate refused, and
    the record keeps both the operator's reason and the gate's verdict."""
    uri, _ = extracted
    worse = registry.version_for_alias(env, registry.CHALLENGER)
    champion = registry.version_for_alias(env, registry.CHAMPION)
    assert worse not in (None, champion)
    promote = ("promote", "--training-set", uri, "--events-topic", events_topic(), "--json")
    blank = subprocess.run(
        [*CLI, *promote, "--override", " "], capture_output=True, text=True, check=False
    )
    assert blank.returncode == 2
    assert "needs a reason" in " ".join(blank.stderr.split())
    assert registry.version_for_alias(env, registry.CHAMPION) == champion
    done = _json_line(run_cli(*promote, "--override", "rollback drill", "--decided-by", "ops"))
    assert (done["decision"], done["version"], done["previous_version"]) == (
        "promoted",
        worse,
        champion,
    )
    assert done["reason"].startswith("override: rollback drill (the gate: ")
    assert "Average Precision is not higher" in done["reason"]
    assert registry.version_for_alias(env, registry.CHAMPION) == worse
