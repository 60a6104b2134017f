"""A quick end-to-end check of a running platform, used by `make demo`.

Round-trips a batch through Kafka on a throw-away topic, and touches PostgreSQL,
S3 and MLflow, reporting what each took. Leaves nothing behind.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

import httpx
from confluent_kafka import Consumer

from fraudstream.adapters import kafka as kafka_adapter
from fraudstream.adapters.object_store import s3_client
from fraudstream.adapters.postgres import connect
from fraudstream.settings import Settings


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str
    seconds: float


def produce_and_consume(settings: Settings, topic: str, count: int) -> tuple[int, int, int]:
    """Produce ``count`` keyed records with acks=all and read them back.

    Returns (acknowledged, distinct consumed, duplicates consumed).
    """
    sender = kafka_adapter.Sender(settings.kafka, **{"linger.ms": 5})
    for i in range(count):
        sender.send(topic, f"k{i % 97}".encode(), str(i).encode())
    sender.flush(60)  # a DeliveryError names how many were not acknowledged, and why
    acked = sender.acked
    seen: dict[str, int] = {}
    consumer = Consumer(kafka_adapter.consumer_config(settings.kafka, f"smoke-{uuid.uuid4().hex}"))
    consumer.subscribe([topic])
    deadline = time.monotonic() + 60
    try:
        while len(seen) < acked and time.monotonic() < deadline:
            for msg in consumer.consume(num_messages=1000, timeout=1.0):
                if msg.error() is None:
                    value = (msg.value() or b"").decode()
                    seen[value] = seen.get(value, 0) + 1
    finally:
        consumer.close()
    return acked, len(seen), sum(n - 1 for n in seen.values())


def _timed(name: str, fn: Callable[[], str]) -> Check:
    start = time.perf_counter()
    try:
        detail, ok = fn(), True
    except Exception as exc:
        detail, ok = f"{type(exc).__name__}: {exc}", False
    return Check(name, ok, detail, time.perf_counter() - start)


def run_smoke(settings: Settings, messages: int = 1000) -> list[Check]:
    def kafka() -> str:
        topic = kafka_adapter.create_scratch_topic(settings.kafka, "fraudstream-smoke")
        try:
            acked, distinct, dupes = produce_and_consume(settings, topic, messages)
        finally:
            kafka_adapter.delete_topic(settings.kafka, topic)
        if acked != messages or distinct != messages or dupes:
            raise RuntimeError(f"acked {acked}, consumed {distinct} distinct, {dupes} duplicates")
        return f"{messages} messages produced (acks=all) and consumed back exactly once"

    def postgres() -> str:
        with connect(settings.postgres) as conn, conn.cursor() as cur:
            cur.execute("SELECT max(version) FROM schema_migrations")
            row = cur.fetchone()
        return f"schema at migration {row[0] if row else None}"

    def s3() -> str:
        client = s3_client(settings.s3)
        key, body = f"smoke/{uuid.uuid4().hex}", uuid.uuid4().bytes
        bucket = settings.s3.dataset_bucket
        client.put_object(Bucket=bucket, Key=key, Body=body)
        try:
            if client.get_object(Bucket=bucket, Key=key)["Body"].read() != body:
                raise RuntimeError("object read back differs")
        finally:
            client.delete_object(Bucket=bucket, Key=key)
        return f"object written to and read back from s3://{bucket}"

    def mlflow() -> str:
        url = f"{settings.mlflow.uri}/api/2.0/mlflow/experiments/search"
        resp = httpx.post(url, json={"max_results": 10}, timeout=10)
        resp.raise_for_status()
        count = len(resp.json().get("experiments", []))
        return f"tracking server answers ({count} experiment(s))"

    return [
        _timed("kafka", kafka),
        _timed("postgres", postgres),
        _timed("s3", s3),
        _timed("mlflow", mlflow),
    ]
