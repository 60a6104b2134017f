"""Labels on the real ``transaction_labels`` topic: where it ends, what was published after that,
and `fraudstream ingest-labels` run from there, as the tests of the verdict path need them.

An analyst's verdict reaches PostgreSQL ``labels`` only through the topic and label ingestion,
so a test that records a verdict ingests the labels published since it began, and nothing the
topic held before (other runs' labels on a kept platform).
"""

from __future__ import annotations

import json
import re
import uuid
from typing import Any

from confluent_kafka import Consumer, TopicPartition

from fraudstream.adapters.kafka import consumer_config
from fraudstream.settings import Settings
from fraudstream.topics import TRANSACTION_LABELS
from tests.integration.conftest import run_cli

TOPIC = TRANSACTION_LABELS.name


def topic_end(settings: Settings) -> dict[int, int]:
    """The next offset of every partition of ``transaction_labels``."""
    consumer = Consumer(consumer_config(settings.kafka, f"label-test-{uuid.uuid4().hex[:6]}"))
    try:
        partitions = consumer.list_topics(TOPIC, timeout=10).topics[TOPIC].partitions
        return {
            p: consumer.get_watermark_offsets(TopicPartition(TOPIC, p), timeout=10)[1]
            for p in partitions
        }
    finally:
        consumer.close()


def published_since(settings: Settings, ends: dict[int, int], txn_id: str) -> list[dict[str, Any]]:
    """The labels of ``txn_id`` published from ``ends`` on, in offset order per partition."""
    consumer = Consumer(consumer_config(settings.kafka, f"label-test-{uuid.uuid4().hex[:6]}"))
    consumer.assign([TopicPartition(TOPIC, p, o) for p, o in ends.items()])
    found, idle = [], 0
    try:
        while idle < 6:
            msg = consumer.poll(0.5)
            if msg is None:
                idle += 1
                continue
            if msg.error() is None and msg.key() == txn_id.encode():
                found.append(json.loads(msg.value()))
    finally:
        consumer.close()
    return found


def ingest_since(settings: Settings, ends: dict[int, int]) -> int:
    """Run `fraudstream ingest-labels` over what was published from ``ends`` on, until idle;
    the number of label rows it wrote.

    The consumer group is new and its offsets are committed at ``ends`` first, so the run reads
    only those labels."""
    group = f"label-test-{uuid.uuid4().hex[:10]}"
    consumer = Consumer(consumer_config(settings.kafka, group))
    try:
        start = [TopicPartition(TOPIC, p, o) for p, o in ends.items()]
        consumer.commit(offsets=start, asynchronous=False)
    finally:
        consumer.close()
    out = run_cli("ingest-labels", "--group", group, "--idle", "3").stdout
    written = re.search(r"label rows written\D+([\d,]+)", out)
    assert written is not None, out
    return int(written.group(1).replace(",", ""))
