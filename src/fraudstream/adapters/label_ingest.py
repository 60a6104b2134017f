"""Label ingestion: the ``transaction_labels`` topic into the Postgres ``labels`` table.

Each batch is validated against the label contract; valid labels are upserted
(latest ``label_time`` wins, so a replay changes nothing), invalid ones are sent
to the dead-letter topic with their reason. Kafka offsets are committed only
after the batch is committed in Postgres and its dead letters are acknowledged:
a crash re-reads the batch (at-least-once), which the upsert makes harmless. The same
upsert lets a batch whose write met an unreachable PostgreSQL be written again on a new
connection (``adapters.retry``, within ``retry``'s budget) instead of ending the run.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import psycopg2
import psycopg2.extensions
from confluent_kafka import Consumer, KafkaError, KafkaException, Message

from fraudstream.adapters.kafka import close_consumer, consumer_config
from fraudstream.adapters.postgres import upsert_labels
from fraudstream.adapters.retry import RetryPolicy, retry
from fraudstream.adapters.transaction_stream import Sender, source_position
from fraudstream.schema import Label
from fraudstream.settings import KafkaSettings, PostgresSettings
from fraudstream.topics import DEAD_LETTERS, TRANSACTION_LABELS
from fraudstream.validation import LabelValidator, Rejection, dead_letter


@dataclass
class IngestReport:
    """What an ingestion run saw: records read, label rows changed, rejections per reason."""

    read: int = 0
    valid: int = 0
    changed: int = 0
    batches: int = 0
    rejected: Counter[str] = field(default_factory=Counter)


#: Joining a consumer group takes seconds (the broker waits for more members
#: before the first assignment); idle time counts only once partitions are assigned.
JOIN_GRACE_S = 30.0


@dataclass
class _IdleClock:
    """When to stop: ``idle_s`` seconds without a record (None: never)."""

    idle_s: float | None
    since: float = field(default_factory=time.monotonic)
    joined: bool = False

    def assigned(self) -> None:
        self.joined = True
        self.since = time.monotonic()

    def active(self) -> None:
        self.since = time.monotonic()

    def expired(self) -> bool:
        if self.idle_s is None:
            return False
        limit = self.idle_s if self.joined else self.idle_s + JOIN_GRACE_S
        return time.monotonic() - self.since >= limit


class _Connection:
    """The ingest's PostgreSQL connection, made on first use and again after a failure."""

    def __init__(self, settings: PostgresSettings) -> None:
        self.settings = settings
        self._conn: psycopg2.extensions.connection | None = None

    def get(self) -> psycopg2.extensions.connection:
        if self._conn is None or self._conn.closed:
            self._conn = psycopg2.connect(self.settings.dsn(), connect_timeout=5)
        return self._conn

    def drop(self) -> None:
        if self._conn is not None:
            self._conn.close()  # an open transaction is rolled back
            self._conn = None


@dataclass(frozen=True)
class LabelIngest:
    """Where labels come from and go: the platform's topics unless overridden."""

    kafka: KafkaSettings
    postgres: PostgresSettings
    group_id: str
    source: str = TRANSACTION_LABELS.name
    dead_letters: str = DEAD_LETTERS.name
    batch_size: int = 500
    validator: LabelValidator = field(default_factory=LabelValidator)
    retry: RetryPolicy = field(default_factory=RetryPolicy)

    def run(
        self, idle_s: float | None = None, progress: Callable[[IngestReport], None] | None = None
    ) -> IngestReport:
        """Ingest from the group's committed position until ``idle_s`` seconds pass without
        a record (None: until interrupted). ``progress`` is called after every batch.

        Never stops on bad input; Kafka and Postgres errors raise, leaving the
        failed batch uncommitted so that the next run re-reads it.
        """
        consumer = Consumer(consumer_config(self.kafka, self.group_id))
        clock = _IdleClock(idle_s)
        consumer.subscribe([self.source], on_assign=lambda _c, _p: clock.assigned())
        sender, report = Sender(self.kafka), IngestReport()
        db = _Connection(self.postgres)
        try:
            while not clock.expired():
                batch = consumer.consume(num_messages=self.batch_size, timeout=0.5)
                if not batch:
                    continue
                clock.active()
                self._ingest(batch, db, sender, report)
                consumer.commit(asynchronous=False)
                if progress:
                    progress(report)
        finally:
            close_consumer(consumer)
            db.drop()
        return report

    def _ingest(
        self, batch: list[Message], db: _Connection, sender: Sender, report: IngestReport
    ) -> None:
        """Upsert and dead-letter one batch; returns once both are durable."""
        labels: list[Label] = []
        for msg in batch:
            result = self._check(msg, sender, report)
            if result is not None:
                labels.append(result)

        def write() -> int:
            conn = db.get()
            changed = upsert_labels(conn, labels)
            conn.commit()
            return changed

        where = f"PostgreSQL at {self.postgres.host}:{self.postgres.port}"
        report.changed += retry(write, self.retry, where, on_failure=lambda _: db.drop())
        sender.flush()
        report.valid += len(labels)
        report.batches += 1

    def _check(self, msg: Message, sender: Sender, report: IngestReport) -> Label | None:
        """The label of one record, or None after queueing its dead letter."""
        error = msg.error()
        if error is not None:
            if error.code() == KafkaError._PARTITION_EOF:
                return None
            raise KafkaException(error)
        report.read += 1
        now = datetime.now(UTC)
        result = self.validator.validate(msg.value(), now)
        if isinstance(result, Rejection):
            position = source_position(msg)
            letter = dead_letter(result, msg.value(), position, now)
            sender.send(self.dead_letters, position.dead_letter_key, letter)
            report.rejected[result.reason.value] += 1
            return None
        return result
