"""Feeds of transactions into Kafka: a file replayed in event-time order, the generator
streamed live with its labels after their (time-scaled) delays, and a paced feed of prepared
records in a background thread that fault drills and benchmarks keep running while they break
things.

Producers are idempotent with ``acks=all`` (``adapters.kafka.Sender``); transactions are keyed by
``card_id`` so each card's records stay ordered in one partition, labels by ``transaction_id``.
Replaying the same file twice sends its records twice: downstream writes are upserts keyed by
``transaction_id``, so a repeated replay changes no table.
"""

from __future__ import annotations

import heapq
import itertools
import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import IO, Any

import orjson
import pyarrow as pa

from fraudstream.adapters.kafka import Sender
from fraudstream.generator import Generated, GeneratorConfig, generate, world_for
from fraudstream.schema import format_timestamp
from fraudstream.schema.tables import encode_row, key_labels, wire_records
from fraudstream.settings import KafkaSettings
from fraudstream.topics import DEAD_LETTERS, TRANSACTION_LABELS, TRANSACTIONS

Progress = Callable[[int], None]


@dataclass(frozen=True)
class StreamTopics:
    """Where records go; the platform's topics unless overridden (tests use their own)."""

    transactions: str = TRANSACTIONS.name
    labels: str = TRANSACTION_LABELS.name
    dead_letters: str = DEAD_LETTERS.name


class Pacer:
    """Keeps sending at ``rate`` records per second (None: as fast as Kafka takes them)."""

    def __init__(self, rate: float | None) -> None:
        self.rate = rate
        self.started = time.monotonic()

    def wait(self, sent: int) -> None:
        """Sleep until ``sent`` records are due since the start."""
        if self.rate is None:
            return
        ahead = sent / self.rate - (time.monotonic() - self.started)
        if ahead > 0:
            time.sleep(ahead)


@dataclass(frozen=True)
class SendReport:
    transactions: int
    labels: int
    seconds: float
    labels_pending: int = 0

    @property
    def rate(self) -> float:
        return self.transactions / self.seconds if self.seconds > 0 else 0.0


def replay(
    settings: KafkaSettings,
    transactions: pa.Table,
    labels: pa.Table | None = None,
    rate: float | None = None,
    topics: StreamTopics = StreamTopics(),
    progress: Progress | None = None,
) -> SendReport:
    """Send conformed tables in time order: each transaction at its event time, each
    label at its label time (labels whose time ties a transaction's go after it).

    ``rate`` paces transactions per wall-clock second; labels ride along unpaced. A label
    without keys gets its transaction's merchant and event time from ``transactions``
    (``schema.tables.key_labels``). Tables must already be sorted
    (``schema.tables.conform`` does that).
    """
    tx = ((t, 0, k, v) for t, k, v in wire_records(transactions, "transaction"))
    lb: Iterator[tuple[int, int, bytes, bytes]] = iter(())
    if labels:
        keyed = key_labels(labels, transactions)
        lb = ((t, 1, k, v) for t, k, v in wire_records(keyed, "label"))
    sender, pacer = Sender(settings), Pacer(rate)
    counts = [0, 0]
    for _time, kind, key, value in heapq.merge(tx, lb, key=lambda r: (r[0], r[1])):
        sender.send(topics.labels if kind else topics.transactions, key, value)
        counts[kind] += 1
        if kind == 0:
            pacer.wait(counts[0])
            if progress and counts[0] % 1000 == 0:
                progress(1000)
    sender.flush()
    if progress:
        progress(counts[0] % 1000)
    return SendReport(counts[0], counts[1], time.monotonic() - pacer.started)


@dataclass
class _PendingLabels:
    """Labels waiting for their (time-scaled) delay to pass, earliest first."""

    heap: list[tuple[float, int, bytes, dict[str, Any]]] = field(default_factory=list)
    seq: itertools.count[int] = field(default_factory=itertools.count)

    def add(self, due: float, key: bytes, row: dict[str, Any]) -> None:
        heapq.heappush(self.heap, (due, next(self.seq), key, row))

    def due(self, now: float) -> Iterator[tuple[bytes, dict[str, Any]]]:
        while self.heap and self.heap[0][0] <= now:
            _, _, key, row = heapq.heappop(self.heap)
            yield key, row


def _label_delays(data: Generated) -> dict[str, tuple[float, dict[str, Any]]]:
    """transaction_id -> (simulated label delay in seconds, label row without its times;
    the live feed sets both when it sends the transaction and the label). The generator's
    labels carry their transaction's event time."""
    delays = {}
    for row in data.labels.to_pylist():
        seconds = (row.pop("label_time") - row.pop("event_time")).total_seconds()
        delays[row["transaction_id"]] = (seconds, row)
    return delays


@dataclass
class LiveStream:
    """Produces generated transactions live, one simulated period after another.

    Event time is the wall clock when a record is sent (this is a live feed);
    the generator's simulated order is kept, its spacing is set by ``rate``. A
    label is sent after its simulated delay divided by ``time_scale`` (1440: a
    day of delay takes a minute), with that moment as its ``label_time``.
    """

    settings: KafkaSettings
    config: GeneratorConfig
    rate: float | None
    time_scale: float = 1440.0
    topics: StreamTopics = field(default_factory=StreamTopics)
    progress: Progress | None = None
    #: Where to write the ground truth of every fraudulent transaction sent (JSON lines of
    #: transaction_id, scenario, reported), including fraud that is never labelled.
    truth: IO[str] | None = None

    def __post_init__(self) -> None:
        self.config.check()
        self._sender = Sender(self.settings)
        self._pacer = Pacer(self.rate)
        self._pending = _PendingLabels()
        self.sent = 0
        self.labels_sent = 0

    def run(
        self, count: int | None, duration_s: float | None, wait_for_labels: bool = False
    ) -> SendReport:
        """Send until ``count`` transactions went out or ``duration_s`` passed.

        Labels not yet due at the end are reported as pending, or awaited with
        ``wait_for_labels``.
        """
        deadline = self._pacer.started + duration_s if duration_s else float("inf")
        world = world_for(self.config)
        per_day = self.config.customers * self.config.tx_per_customer_per_day
        days = max(0.01, min(1.0, 20_000 / per_day))
        prefix = f"live{int(time.time())}"
        for chunk in itertools.count():
            if self._done(count, deadline):
                break
            period = replace(self.config, seed=self.config.seed * 100_003 + chunk, days=days)
            data = generate(period, world, first_id=self.sent, id_prefix=prefix)
            self._send(data, count, deadline)
        while wait_for_labels and self._pending.heap:
            time.sleep(max(0.0, min(1.0, self._pending.heap[0][0] - time.monotonic())))
            self._send_due_labels()
        self._sender.flush()
        seconds = time.monotonic() - self._pacer.started
        return SendReport(self.sent, self.labels_sent, seconds, len(self._pending.heap))

    def _done(self, count: int | None, deadline: float) -> bool:
        return (count is not None and self.sent >= count) or time.monotonic() >= deadline

    def _send(self, data: Generated, count: int | None, deadline: float) -> None:
        delays = _label_delays(data)
        table = data.transactions.drop_columns(["event_time"])
        index = 0
        for batch in table.to_batches(max_chunksize=1000):
            for row in batch.to_pylist():
                if self._done(count, deadline):
                    return
                scenario = data.scenario[index]
                index += 1
                now = datetime.now(UTC)
                key = row["card_id"].encode()
                value = encode_row(row, "event_time", format_timestamp(now))
                self._sender.send(self.topics.transactions, key, value)
                self.sent += 1
                label = delays.get(row["transaction_id"])
                if label is not None:
                    due = time.monotonic() + label[0] / self.time_scale
                    # Keyed: the transaction's merchant and the event time it was sent with.
                    keys = {"merchant_id": row["merchant_id"], "event_time": format_timestamp(now)}
                    self._pending.add(due, row["transaction_id"].encode(), label[1] | keys)
                if scenario is not None and self.truth is not None:
                    self._write_truth(row["transaction_id"], scenario, label)
                self._pacer.wait(self.sent)
            self._send_due_labels()
            if self.progress:
                self.progress(batch.num_rows)

    def _write_truth(self, transaction_id: str, scenario: str, label: object) -> None:
        assert self.truth is not None
        reported = label is not None
        line = {"transaction_id": transaction_id, "scenario": scenario, "reported": reported}
        self.truth.write(json.dumps(line) + "\n")
        self.truth.flush()

    def _send_due_labels(self) -> None:
        for key, row in self._pending.due(time.monotonic()):
            value = encode_row(row, "label_time", format_timestamp(datetime.now(UTC)))
            self._sender.send(self.topics.labels, key, value)
            self.labels_sent += 1


POISON = [
    b"{not json",
    b'{"transaction_id": "poison-without-fields"}',
    b"\xff\xfe",
    b"{}",
    b'{"transaction_id": 5}',
    b'{"amount": -1}',
]
"""Records no validator accepts: not JSON, a transaction without its fields, not UTF-8, an
empty object, an id of the wrong type, a negative amount without the rest."""


def send_poison(kafka: KafkaSettings, topic: str, count: int = len(POISON)) -> set[str]:
    """Send ``count`` records of ``POISON`` in turn (each kind once by default), keyed
    ``poison-<i>``; the dead-letter keys (``topic/partition/offset``) they must get."""
    sender = Sender(kafka)
    positions = sender.keep_positions()
    for i in range(count):
        sender.send(topic, f"poison-{i}".encode(), POISON[i % len(POISON)])
    sender.flush(60)  # raises DeliveryError if any was not acknowledged
    return {f"{t}/{partition}/{offset}" for t, partition, offset in positions}


class PacedFeed(threading.Thread):
    """Sends ``records`` (key, transaction JSON) to ``topic`` at ``rate`` per second until
    they run out or ``halt`` is set; ``prime`` sends a first batch at once, before ``start``.

    ``ids()`` are the transactions sent so far, in order; an exception in the thread is
    kept in ``error`` for the caller to surface.
    """

    def __init__(
        self,
        kafka: KafkaSettings,
        topic: str,
        records: list[tuple[bytes, bytes]],
        rate: float,
    ) -> None:
        super().__init__(daemon=True)
        self.kafka, self.topic, self.records, self.rate = kafka, topic, records, rate
        self.all_ids = [str(orjson.loads(v)["transaction_id"]) for _, v in records]
        self.sent = 0
        self.halt = threading.Event()
        self.error: BaseException | None = None

    def prime(self, count: int) -> list[str]:
        """Send the first ``count`` records at once; their transaction ids."""
        sender = Sender(self.kafka)
        for key, value in self.records[:count]:
            sender.send(self.topic, key, value)
        sender.flush()
        self.sent = count
        return self.ids()

    def run(self) -> None:
        try:
            sender, pacer, first = Sender(self.kafka), Pacer(self.rate), self.sent
            for i, (key, value) in enumerate(self.records[first:], start=first + 1):
                if self.halt.is_set():
                    break
                sender.send(self.topic, key, value)
                self.sent = i
                pacer.wait(i - first)
            sender.flush()
        except BaseException as exc:  # surfaced by the caller
            self.error = exc

    def ids(self) -> list[str]:
        return self.all_ids[: self.sent]
