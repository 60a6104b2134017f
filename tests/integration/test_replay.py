"""Replay, live generation and validation against the real Kafka cluster."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from confluent_kafka import Consumer, Message, Producer

from fraudstream.adapters.kafka import (
    consumer_config,
    create_scratch_topic,
    delete_topic,
    producer_config,
    records_in,
)
from fraudstream.generator import GeneratorConfig, generate, write_history
from fraudstream.schema import field_names
from fraudstream.services.ingest import validate_topic
from fraudstream.settings import Settings
from fraudstream.validation import Reason, Transaction, TransactionValidator
from tests.integration.conftest import CLI, run_cli, unique

pytestmark = pytest.mark.services("kafka")
SMALL = GeneratorConfig(seed=5, days=2, customers=600, merchants=300, fraud_rate=0.05)


@pytest.fixture
def new_topic(settings: Settings) -> Iterator[Callable[[], str]]:
    """Makes extra fresh topics shaped like the platform's; deletes them afterwards."""
    made: list[str] = []

    def make() -> str:
        made.append(create_scratch_topic(settings.kafka, "test"))
        return made[-1]

    yield make
    for name in made:
        delete_topic(settings.kafka, name)


def _consume(settings: Settings, topic: str, expected: int, drain_s: float = 2.0) -> list[Message]:
    """Every record of ``topic`` from the start: until ``expected`` arrived (60 s), then a drain."""
    consumer = Consumer(consumer_config(settings.kafka, unique("read")))
    consumer.subscribe([topic])
    records: list[Message] = []
    deadline = time.monotonic() + 60
    try:
        while len(records) < expected and time.monotonic() < deadline:
            records += [m for m in consumer.consume(1000, timeout=1.0) if m.error() is None]
        records += [m for m in consumer.consume(1000, timeout=drain_s) if m.error() is None]
    finally:
        consumer.close()
    return records


def test_a_replayed_file_is_read_back_completely_once_in_event_time_order_per_card(
    settings: Settings, new_topic: Callable[[], str], tmp_path: Path
) -> None:
    data = generate(SMALL)
    tx_path, label_path = write_history(data, tmp_path)
    shuffled = data.transactions.take(pa.array(list(range(data.transactions.num_rows))[::-1]))
    pq.write_table(shuffled, tx_path)  # replay must restore event-time order itself
    tx_topic, label_topic = new_topic(), new_topic()
    run_cli(
        "replay", "--transactions", str(tx_path), "--labels", str(label_path),
        "--topic", tx_topic, "--labels-topic", label_topic,
    )  # fmt: skip

    n = data.transactions.num_rows
    records = _consume(settings, tx_topic, n)
    values = [json.loads(m.value()) for m in records]
    ids = [v["transaction_id"] for v in values]
    assert len(ids) == n
    assert set(ids) == set(data.transactions.column("transaction_id").to_pylist())
    by_card: dict[str, list[str]] = {}
    for msg, value in zip(records, values, strict=True):
        assert msg.key().decode() == value["card_id"]
        assert set(value) <= set(field_names("transaction"))
        by_card.setdefault(value["card_id"], []).append(value["event_time"])
    assert all(times == sorted(times) for times in by_card.values())

    labels = [json.loads(m.value()) for m in _consume(settings, label_topic, data.labels.num_rows)]
    assert len(labels) == data.labels.num_rows
    assert {lb["transaction_id"] for lb in labels} <= set(ids)


def _row(i: int, **change: object) -> dict[str, object]:
    now = datetime.now(UTC) - timedelta(hours=1)
    row: dict[str, object] = {
        "transaction_id": f"t{i}",
        "event_time": (now + timedelta(seconds=i)).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "card_id": f"card-{i % 7}",
        "merchant_id": "m1",
        "amount": 10.5,
        "currency": "EUR",
    }
    row.update(change)
    return row


def test_invalid_records_of_a_replayed_stream_land_in_dead_letters(
    settings: Settings, new_topic: Callable[[], str], tmp_path: Path
) -> None:
    far = (datetime.now(UTC) + timedelta(days=2)).strftime("%Y-%m-%dT%H:%M:%SZ")
    bad = {
        100: ("amount", -3.0, Reason.AMOUNT_NEGATIVE),
        101: ("currency", "XXY", Reason.UNKNOWN_CURRENCY),
        102: ("amount", 12.345, Reason.AMOUNT_PRECISION),
        103: ("amount", 5e7, Reason.AMOUNT_ABSURD),
    }
    rows = [_row(i) for i in range(40)] + [_row(i, **{f: v}) for i, (f, v, _) in bad.items()]
    path = tmp_path / "mixed.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    source, letters, screened = new_topic(), new_topic(), new_topic()
    # By default the row policy keeps them out and says so; --send-invalid lets the stream see them.
    kept = run_cli("replay", "--transactions", str(path), "--topic", screened).stdout
    assert "4 of 44 rows fail the row policy" in kept
    for _, _, reason in bad.values():
        assert reason.value in kept
    assert records_in(settings.kafka, [screened])[screened] == 40
    run_cli("replay", "--transactions", str(path), "--topic", source, "--send-invalid")
    producer = Producer(producer_config(settings.kafka))
    garbage = [b"\xff\xfe not json", b'{"transaction_id": "x"}', b"x" * 70_000]
    for raw in garbage:
        producer.produce(source, raw, b"raw")
    producer.produce(source, json.dumps(_row(200, event_time=far)).encode(), b"card-1")
    assert producer.flush(30) == 0

    report = validate_topic(settings.kafka, source, unique("validate"), letters, idle_s=3)
    assert report.valid == 40
    assert report.total == len(rows) + len(garbage) + 1
    dead = [json.loads(m.value()) for m in _consume(settings, letters, report.total - 40)]
    reasons = sorted(d["reason"] for d in dead)
    expected = [r.value for *_, r in bad.values()] + [
        Reason.UNPARSEABLE.value, Reason.MISSING_FIELD.value, Reason.OVERSIZED.value,
        Reason.EVENT_TIME_IN_FUTURE.value,
    ]  # fmt: skip
    assert reasons == sorted(expected)
    originals = {(m.partition(), m.offset()): m.value() for m in _consume(settings, source, 48)}
    for letter in dead:
        assert letter["source_topic"] == source
        raw = originals[(letter["source_partition"], letter["source_offset"])]
        if letter["payload_encoding"] == "utf-8":
            assert letter["payload"].encode() == raw
        assert letter["payload_bytes"] == len(raw)

    again = validate_topic(settings.kafka, source, unique("validate"), letters, idle_s=2)
    assert again.total == report.total  # a new group re-reads; nothing was lost or consumed away


def test_replay_refuses_an_ill_typed_column_before_sending(
    settings: Settings, new_topic: Callable[[], str], tmp_path: Path
) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(
        "transaction_id,event_time,card_id,merchant_id,amount,currency\n"
        "t1,2026-01-01T00:00:00Z,c1,m1,12.50,EUR\n"
        "t2,2026-01-01T00:00:01Z,c1,m1,twelve,EUR\n"
    )
    topic = new_topic()
    result = subprocess.run(
        [*CLI, "replay", "--transactions", str(path), "--topic", topic],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 1
    assert "error (input)" in result.stderr
    assert "'amount'" in result.stderr
    assert records_in(settings.kafka, [topic])[topic] == 0


def test_generate_stream_sends_valid_transactions_and_labels_after_them(
    settings: Settings, new_topic: Callable[[], str], tmp_path: Path
) -> None:
    tx_topic, label_topic = new_topic(), new_topic()
    truth_file = tmp_path / "truth.jsonl"
    run_cli(
        "generate", "stream", "--rate", "2000", "--count", "3000", "--time-scale", "2000000",
        "--wait-labels", "--fraud-rate", "0.05", "--customers", "1000", "--merchants", "300",
        "--topic", tx_topic, "--labels-topic", label_topic, "--truth", str(truth_file),
    )  # fmt: skip
    records = _consume(settings, tx_topic, 3000)
    assert len(records) == 3000
    validator, now = TransactionValidator(), datetime.now(UTC)
    txs = {}
    for msg in records:
        tx = validator.validate(msg.value(), now)
        assert isinstance(tx, Transaction), tx
        assert msg.key().decode() == tx.card_id
        txs[tx.transaction_id] = tx
    assert len(txs) == 3000
    labels = [json.loads(m.value()) for m in _consume(settings, label_topic, 130)]
    fraud = [lb for lb in labels if lb["is_fraud"]]
    assert len(fraud) >= 100  # 5 % of 3000, less 10 % under-reporting
    for label in labels:
        tx = txs[label["transaction_id"]]
        assert datetime.fromisoformat(label["label_time"]) > tx.event_time
    # The ground truth holds every fraud sent: the labelled ones and the never-reported ones.
    truth = {r["transaction_id"]: r for r in map(json.loads, truth_file.read_text().splitlines())}
    assert set(truth) <= set(txs)
    assert {lb["transaction_id"] for lb in fraud} <= {k for k, r in truth.items() if r["reported"]}
    assert len(truth) > len(fraud)  # under-reporting: some fraud never gets a label
    assert all(r["scenario"] for r in truth.values())
