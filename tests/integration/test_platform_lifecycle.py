"""`platform status`, `down` and `up` as a user runs them: ports, data, restarts."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import uuid

import pytest
from confluent_kafka import Consumer, Producer

from fraudstream.adapters.kafka import consumer_config, producer_config
from fraudstream.adapters.object_store import s3_client
from fraudstream.adapters.postgres import connect
from fraudstream.platform.process import (
    ProcessInfo,
    ProcessRecord,
    alive,
    listening_ports,
    running_processes,
)
from fraudstream.platform.runtime import EmbeddedPlatform
from fraudstream.settings import Settings
from tests.integration.conftest import CLI, run_cli

pytestmark = pytest.mark.platform


def test_status_json_lists_services_and_connections(settings: Settings) -> None:
    doc = json.loads(run_cli("platform", "status", "--json").stdout)
    assert doc["healthy"] is True
    names = [s["service"] for s in doc["services"]]
    assert names == ["postgres", "minio", "kafka-1", "kafka-2", "kafka-3", "mlflow", "redis"]
    assert all(s["pid"] and s["state"] == "running" for s in doc["services"])
    conn = doc["connections"]
    assert conn["kafka_bootstrap_servers"] == settings.kafka.bootstrap
    assert conn["s3_endpoint"] == settings.s3.endpoint
    assert conn["mlflow_tracking_uri"] == settings.mlflow.uri
    assert settings.postgres.password is not None
    assert settings.postgres.password.get_secret_value() not in json.dumps(doc)


def test_up_is_idempotent(platform: EmbeddedPlatform) -> None:
    before = {s.service: s.pid for s in platform.status()}
    run_cli("platform", "up")
    after = {s.service: s.pid for s in platform.status()}
    assert before == after


def _descendants(pid: int) -> list[str]:
    """Command lines of every process below ``pid``."""
    children: dict[int, list[ProcessInfo]] = {}
    for process in running_processes():
        children.setdefault(process.ppid, []).append(process)
    found, todo = [], list(children.get(pid, []))
    while todo:
        child = todo.pop()
        found.append(child.cmdline)
        todo.extend(children.get(child.pid, []))
    return found


def test_mlflow_runs_without_its_job_runner(platform: EmbeddedPlatform) -> None:
    """MLflow 3's job runner (huey consumers, ~250 MB each) is off: fraudstream uses no jobs."""
    mlflow = next(s for s in platform.status() if s.service == "mlflow")
    assert mlflow.pid is not None
    below = _descendants(mlflow.pid)
    assert any("uvicorn" in cmd for cmd in below), below  # the server's worker: the walk works
    assert not [cmd for cmd in below if "huey" in cmd]


def test_down_frees_every_port_and_data_survives_up(
    settings: Settings, platform: EmbeddedPlatform, topic: str
) -> None:
    marker = uuid.uuid4().hex
    with connect(settings.postgres) as conn, conn.cursor() as cur:
        cur.execute(
            """INSERT INTO labels (transaction_id, is_fraud, label_time, source)
               VALUES (%s, true, now(), 'analyst')""",
            (marker,),
        )
    s3_client(settings.s3).put_object(
        Bucket=settings.s3.dataset_bucket, Key=f"test/{marker}", Body=marker.encode()
    )
    producer = Producer(producer_config(settings.kafka))
    producer.produce(topic, key="k", value=marker)
    assert producer.flush(30) == 0

    run_cli("platform", "down")
    ports = {p for svc in platform.services for p in svc.ports}
    assert ports & listening_ports() == set()
    for svc in platform.services:
        record = ProcessRecord.load(platform.run_dir, svc.name)
        assert record is None or not alive(record)

    status = json.loads(run_cli("platform", "up", "--json").stdout)
    assert status["healthy"], status
    with connect(settings.postgres) as conn, conn.cursor() as cur:
        cur.execute("SELECT is_fraud FROM labels WHERE transaction_id = %s", (marker,))
        assert cur.fetchone() == (True,)
    body = s3_client(settings.s3).get_object(
        Bucket=settings.s3.dataset_bucket, Key=f"test/{marker}"
    )
    assert body["Body"].read() == marker.encode()
    consumer = Consumer(consumer_config(settings.kafka, f"g-{marker}"))
    consumer.subscribe([topic])
    values = [m.value() for m in consumer.consume(num_messages=10, timeout=20)]
    consumer.close()
    assert values == [marker.encode()]


def test_a_second_instance_on_taken_ports_names_service_and_port(
    settings: Settings, platform: EmbeddedPlatform
) -> None:
    """Another home on the same ports: `up` refuses, naming the service and the port."""
    second = platform.home.parent / f"test-second-{uuid.uuid4().hex[:8]}"
    env = {**os.environ, "FRAUDSTREAM_HOME": str(second)}
    try:
        result = subprocess.run(
            [*CLI, "platform", "up"],
            capture_output=True,
            text=True,
            env=env,
            timeout=300,
            check=False,
        )
    finally:
        subprocess.run([*CLI, "platform", "down"], env=env, capture_output=True, check=False)
        shutil.rmtree(second, ignore_errors=True)
    assert result.returncode == 1
    assert "error (service): postgres" in result.stderr
    assert f"port(s) [{settings.postgres.port}] already in use" in result.stderr
    # It started nothing: the running instance is untouched and healthy.
    assert all(s.healthy for s in platform.status())
