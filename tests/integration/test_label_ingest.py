"""`fraudstream ingest-labels` against the real Kafka cluster and PostgreSQL."""

from __future__ import annotations

import json
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from fraudstream.adapters.kafka import (
    CONSUMER_CLOSE_S,
    consumer_config,
    create_scratch_topic,
    delete_topic,
    producer_config,
)
from fraudstream.adapters.postgres import connect
from fraudstream.settings import Settings
from tests.integration.conftest import CLI, run_cli, unique

pytestmark = pytest.mark.services("kafka", "postgres")
T0 = datetime(2026, 3, 1, 12, tzinfo=UTC)


@pytest.fixture
def dead_topic(settings: Settings) -> Iterator[str]:
    name = create_scratch_topic(settings.kafka, "test-dead")
    yield name
    delete_topic(settings.kafka, name)


def _label(tid: str, is_fraud: bool, hours: int, source: str = "chargeback") -> dict[str, Any]:
    stamp = (T0 + timedelta(hours=hours)).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {"transaction_id": tid, "is_fraud": is_fraud, "label_time": stamp, "source": source}


def _produce(settings: Settings, topic: str, records: list[tuple[str, bytes]]) -> None:
    producer = Producer(producer_config(settings.kafka))
    for key, value in records:
        producer.produce(topic, value, key.encode())
    assert producer.flush(30) == 0


def _rows(settings: Settings, ids: list[str]) -> list[tuple[Any, ...]]:
    with connect(settings.postgres) as conn, conn.cursor() as cur:
        cur.execute(
            """SELECT transaction_id, is_fraud, fraud_scenario, label_time, source, ingested_at
               FROM labels WHERE transaction_id = ANY(%s) ORDER BY transaction_id""",
            (ids,),
        )
        return cur.fetchall()


def _dead_letters(settings: Settings, topic: str, expected: int) -> list[dict[str, Any]]:
    consumer = Consumer(consumer_config(settings.kafka, unique("read")))
    consumer.subscribe([topic])
    found: list[dict[str, Any]] = []
    deadline = time.monotonic() + 30
    try:
        while len(found) < expected and time.monotonic() < deadline:
            batch = consumer.consume(100, timeout=1.0)
            found += [json.loads(m.value() or b"") for m in batch if m.error() is None]
        found += [json.loads(m.value() or b"") for m in consumer.consume(100, 2.0) if not m.error()]
    finally:
        consumer.close()
    return found


def _lag(settings: Settings, topic: str, group: str) -> int:
    """Records of ``topic`` the group has not committed past."""
    consumer = Consumer(consumer_config(settings.kafka, group))
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        parts = [TopicPartition(topic, p) for p in partitions]
        committed = consumer.committed(parts, timeout=10)
        lag = 0
        for part in committed:
            _, high = consumer.get_watermark_offsets(part, timeout=10)
            lag += high - max(part.offset, 0)
        return lag
    finally:
        consumer.close()


def test_labels_are_upserted_once_and_invalid_ones_dead_lettered(
    settings: Settings, topic: str, dead_topic: str, group_id: str
) -> None:
    tag = uuid.uuid4().hex[:8]
    a, b, c = f"{tag}-a", f"{tag}-b", f"{tag}-c"
    valid = [
        _label(a, True, 10) | {"fraud_scenario": "card_testing"},
        _label(a, True, 10) | {"fraud_scenario": "card_testing"},  # exact duplicate
        _label(a, False, 5, "analyst"),  # older: must not win
        _label(b, False, 3, "analyst"),
        _label(c, False, 1, "analyst"),
        _label(c, True, 48),  # newer verdict replaces the analyst's
    ]
    invalid = [
        b"{not json",
        json.dumps(_label(f"{tag}-x", True, 1) | {"source": "hunch"}).encode(),
        json.dumps({"transaction_id": f"{tag}-y", "is_fraud": True}).encode(),
        json.dumps(_label(f"{tag}-z", True, 24 * 365 * 10)).encode(),  # ten years ahead
    ]
    records = [(r["transaction_id"], json.dumps(r).encode()) for r in valid]
    _produce(settings, topic, records + [(f"{tag}-bad", v) for v in invalid])
    args = ["ingest-labels", "--topic", topic, "--dead-letters", dead_topic, "--idle", "3"]
    out = run_cli(*args, "--group", group_id, "--batch-size", "4").stdout
    assert "10 records" in out, out

    rows = _rows(settings, [a, b, c, f"{tag}-x", f"{tag}-y", f"{tag}-z"])
    assert [r[:5] for r in rows] == [
        (a, True, "card_testing", T0 + timedelta(hours=10), "chargeback"),
        (b, False, None, T0 + timedelta(hours=3), "analyst"),
        (c, True, None, T0 + timedelta(hours=48), "chargeback"),
    ]
    letters = _dead_letters(settings, dead_topic, len(invalid))
    assert sorted(d["reason"] for d in letters) == [
        "label_time_in_future",
        "missing_field",
        "schema_violation",
        "unparseable",
    ]
    assert {d["source_topic"] for d in letters} == {topic}
    assert all(d["message"] for d in letters)
    assert _lag(settings, topic, group_id) == 0

    # A replay from the start (a new group) changes no row, not even its ingested_at.
    run_cli(*args, "--group", unique("replay"))
    assert _rows(settings, [a, b, c]) == rows


def test_without_idle_it_runs_until_interrupted(
    settings: Settings, topic: str, dead_topic: str, group_id: str
) -> None:
    tid = f"{uuid.uuid4().hex[:8]}-int"
    _produce(settings, topic, [(tid, json.dumps(_label(tid, True, 2)).encode())])
    args = ["ingest-labels", "--topic", topic, "--dead-letters", dead_topic, "--group", group_id]
    # Ctrl-C as a terminal sends it: a test run started in the background (`cmd &` in a
    # script) ignores SIGINT, and its children would inherit that and never see it.
    proc = subprocess.Popen(
        [*CLI, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # the row is written and its offset committed
            assert proc.poll() is None, proc.communicate()
            if _rows(settings, [tid]) and _lag(settings, topic, group_id) == 0:
                break
            time.sleep(0.5)
        assert [r[:2] for r in _rows(settings, [tid])] == [(tid, True)]
        assert proc.poll() is None  # still waiting for more labels
    finally:
        proc.send_signal(signal.SIGINT)
        # Stopping closes the consumer, which leaves its group. That waits on the group's
        # coordinator: right after the Kafka node-kill test, while the restarted node still
        # loaded its coordinator state, it once took over 120 s. The wait is bounded
        # (adapters.kafka.CONSUMER_CLOSE_S), so Ctrl-C ends the command within it.
        out, err = proc.communicate(timeout=CONSUMER_CLOSE_S + 60)
    assert proc.returncode == 0, err
    assert "stopped" in out
    assert _lag(settings, topic, group_id) == 0
