"""The embedded Kafka cluster keeps every acknowledged record, exactly once."""

from __future__ import annotations

import json
import os
import signal
import time

import pytest
from confluent_kafka import Consumer, Producer

from fraudstream.adapters.kafka import (
    SCRATCH_TOPIC,
    broker_ids,
    consumer_config,
    create_scratch_topic,
    describe_topics,
    producer_config,
    scratch_topics,
)
from fraudstream.platform.process import ProcessRecord, alive
from fraudstream.platform.runtime import EmbeddedPlatform
from fraudstream.settings import Settings
from fraudstream.topics import topic_names
from tests.integration.conftest import run_cli

pytestmark = pytest.mark.services("kafka")


def _consume_all(settings: Settings, topic: str, group_id: str, expected: int) -> dict[str, int]:
    """Read the topic from the start until ``expected`` distinct values arrived (or 60 s)."""
    seen: dict[str, int] = {}
    consumer = Consumer(consumer_config(settings.kafka, group_id))
    consumer.subscribe([topic])
    deadline = time.monotonic() + 60
    try:
        while len(seen) < expected and time.monotonic() < deadline:
            for msg in consumer.consume(num_messages=5000, timeout=1.0):
                assert msg.error() is None, msg.error()
                value = msg.value().decode()
                seen[value] = seen.get(value, 0) + 1
        # Drain briefly: a duplicate would arrive after the last distinct value.
        for msg in consumer.consume(num_messages=5000, timeout=2.0):
            value = msg.value().decode()
            seen[value] = seen.get(value, 0) + 1
    finally:
        consumer.close()
    return seen


def test_platform_topics_have_the_contracted_shape(settings: Settings) -> None:
    states = {s.name: s for s in describe_topics(settings.kafka)}
    assert sorted(states) == sorted(topic_names())
    for state in states.values():
        assert state.partitions == settings.kafka.partitions
        assert state.replication_factor == 3
        assert state.min_insync_replicas == 2


def test_prune_lists_then_deletes_scratch_topics_only(settings: Settings) -> None:
    left = create_scratch_topic(settings.kafka, "test-prune")  # as an interrupted run leaves it
    assert SCRATCH_TOPIC.fullmatch(left)
    listed = run_cli("topics", "prune").stdout
    assert left in listed
    assert "--yes" in listed
    assert left in scratch_topics(settings.kafka)  # listing deleted nothing
    deleted = run_cli("topics", "prune", "--yes").stdout
    assert "deleted" in deleted
    assert left in deleted
    deadline = time.monotonic() + 30
    while left in scratch_topics(settings.kafka) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert scratch_topics(settings.kafka) == {}
    assert sorted(s.name for s in describe_topics(settings.kafka)) == sorted(topic_names())
    assert "no scratch topics" in run_cli("topics", "prune").stdout


def test_ten_thousand_records_are_consumed_exactly_once(
    settings: Settings, topic: str, group_id: str
) -> None:
    acked: list[str] = []
    errors: list[str] = []

    def on_delivery(err: object, msg: object) -> None:
        if err is None:
            acked.append(msg.value().decode())  # type: ignore[attr-defined]
        else:
            errors.append(str(err))

    producer = Producer(producer_config(settings.kafka))
    for i in range(10_000):
        producer.produce(topic, key=f"card-{i % 500}", value=str(i), on_delivery=on_delivery)
        producer.poll(0)
    assert producer.flush(60) == 0
    assert errors == []
    assert len(acked) == 10_000

    seen = _consume_all(settings, topic, group_id, expected=10_000)
    assert set(seen) == {str(i) for i in range(10_000)}
    assert all(count == 1 for count in seen.values())


def test_acknowledged_records_survive_a_node_killed_mid_produce(
    settings: Settings, platform: EmbeddedPlatform, topic: str, group_id: str
) -> None:
    victim = platform.kafka_nodes[1]
    record = ProcessRecord.load(platform.run_dir, victim.name)
    assert record is not None
    assert alive(record)

    acked: set[str] = set()
    producer = Producer(producer_config(settings.kafka))

    def on_delivery(err: object, msg: object) -> None:
        if err is None:
            acked.add(msg.value().decode())  # type: ignore[attr-defined]

    total = 6_000
    for i in range(total):
        if i == total // 3:
            producer.flush(30)
            os.killpg(record.pid, signal.SIGKILL)  # a crash, not a clean shutdown
        producer.produce(topic, key=f"card-{i % 300}", value=str(i), on_delivery=on_delivery)
        producer.poll(0)
        if i % 500 == 0:
            producer.flush(30)
    producer.flush(120)
    # With min.insync.replicas=2, two live nodes still acknowledge every write.
    assert len(acked) == total

    # `up` notices the dead node and restarts it; it rejoins the cluster.
    status = json.loads(run_cli("platform", "up", "--only", "kafka", "--json").stdout)
    assert status["healthy"], status
    assert broker_ids(settings.kafka) == [1, 2, 3]

    seen = _consume_all(settings, topic, group_id, expected=len(acked))
    assert acked <= set(seen)
    assert all(count == 1 for count in seen.values())
