"""MLflow logs to the PostgreSQL backend and stores artifacts in the S3 bucket."""

from __future__ import annotations

import hashlib
import os
import uuid
from pathlib import Path

import mlflow
import pytest
from mlflow.tracking import MlflowClient

from fraudstream.adapters.object_store import s3_client
from fraudstream.settings import Settings

pytestmark = pytest.mark.services("minio", "mlflow")


def test_platform_buckets_exist(settings: Settings) -> None:
    names = {b["Name"] for b in s3_client(settings.s3).list_buckets()["Buckets"]}
    assert set(settings.s3.buckets) <= names


def test_an_artifact_lands_in_the_bucket_and_downloads_identical(
    settings: Settings, tmp_path: Path
) -> None:
    payload = os.urandom(256 * 1024)
    source = tmp_path / "model.bin"
    source.write_bytes(payload)

    client = MlflowClient(tracking_uri=settings.mlflow.uri)
    experiment_id = client.create_experiment(f"test-{uuid.uuid4().hex[:10]}")
    run = client.create_run(experiment_id)
    client.log_metric(run.info.run_id, "auc", 0.93)
    client.log_artifact(run.info.run_id, str(source), artifact_path="blobs")
    client.set_terminated(run.info.run_id)

    # The tracking server wrote the artifact to the MLflow bucket...
    s3 = s3_client(settings.s3)
    listing = s3.list_objects_v2(Bucket=settings.s3.mlflow_bucket, Prefix="artifacts/")
    keys = [o["Key"] for o in listing.get("Contents", [])]
    stored = [k for k in keys if run.info.run_id in k and k.endswith("blobs/model.bin")]
    assert len(stored) == 1, keys
    body = s3.get_object(Bucket=settings.s3.mlflow_bucket, Key=stored[0])["Body"].read()
    assert hashlib.sha256(body).digest() == hashlib.sha256(payload).digest()

    # ...and a client downloads it back through the server, byte for byte.
    mlflow.set_tracking_uri(settings.mlflow.uri)
    out = tmp_path / "download"
    out.mkdir()
    local = client.download_artifacts(run.info.run_id, "blobs/model.bin", str(out))
    assert Path(local).read_bytes() == payload

    # The run itself is in the PostgreSQL backend store.
    fetched = client.get_run(run.info.run_id)
    assert fetched.data.metrics["auc"] == pytest.approx(0.93)
