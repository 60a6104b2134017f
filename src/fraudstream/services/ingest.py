"""Consume, validate, dead-letter, write, commit: the one loop behind topic validation
(``fraudstream validate-topic``) and label ingestion (``fraudstream ingest-labels``).

Each batch is validated against its contract; invalid records go to the dead-letter topic with
their reason, keyed by their source position, and the valid ones are handed to the use case's
write (none for validation, an upsert into PostgreSQL for labels). Kafka offsets are committed
only after that write is committed and the batch's dead letters are acknowledged: a crash re-reads
the batch (at-least-once), which the dead letters' keys and the upsert make harmless. Bad input
never stops the loop; Kafka and PostgreSQL errors raise and leave the failed batch uncommitted.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Generic, Protocol, TypeVar

import psycopg2
import psycopg2.extensions
from confluent_kafka import Consumer, KafkaError, KafkaException, Message

from fraudstream.adapters.kafka import Sender, close_consumer, consumer_config
from fraudstream.adapters.postgres import upsert_labels
from fraudstream.adapters.retry import RetryPolicy, retry
from fraudstream.schema import Label
from fraudstream.settings import KafkaSettings, PostgresSettings
from fraudstream.topics import DEAD_LETTERS, TRANSACTION_LABELS
from fraudstream.validation import (
    LabelValidator,
    Rejection,
    SourcePosition,
    TransactionValidator,
    dead_letter,
)

T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)

#: Joining a consumer group takes seconds (the broker waits for more members
#: before the first assignment); idle time counts only once partitions are assigned.
JOIN_GRACE_S = 30.0


class Validator(Protocol[T_co]):
    def validate(self, raw: bytes | None, now: datetime) -> T_co | Rejection: ...


@dataclass
class StreamReport:
    """What a run saw: records read, valid ones, rejections per reason code, batches."""

    read: int = 0
    valid: int = 0
    batches: int = 0
    rejected: Counter[str] = field(default_factory=Counter)

    @property
    def total(self) -> int:
        return self.valid + sum(self.rejected.values())


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


def source_position(msg: Message) -> SourcePosition:
    topic, partition, offset = msg.topic(), msg.partition(), msg.offset()
    # a consumed record always has all three
    return SourcePosition(topic or "", partition or 0, offset or 0, msg.key())


@dataclass(frozen=True)
class ValidatedConsumer(Generic[T]):
    """The loop: ``source`` from ``group_id``'s committed position, through ``validator``."""

    kafka: KafkaSettings
    source: str
    group_id: str
    validator: Validator[T]
    dead_letters: str = DEAD_LETTERS.name
    batch_size: int = 500

    def run(
        self,
        write: Callable[[list[T]], None],
        report: StreamReport,
        idle_s: float | None,
        max_messages: int | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> None:
        """Until ``idle_s`` seconds pass without a record once the group has its partitions
        (None: until interrupted), or ``max_messages`` were read. ``write`` makes a batch's
        valid records durable before its offsets are committed; ``progress`` gets each
        batch's size."""
        consumer = Consumer(consumer_config(self.kafka, self.group_id))
        clock = _IdleClock(idle_s)
        consumer.subscribe([self.source], on_assign=lambda _c, _p: clock.assigned())
        sender = Sender(self.kafka)
        try:
            while not clock.expired():
                if max_messages is not None and report.read >= max_messages:
                    break
                batch = consumer.consume(num_messages=self.batch_size, timeout=0.5)
                if not batch:
                    continue
                clock.active()
                valid = [v for msg in batch if (v := self._check(msg, sender, report)) is not None]
                write(valid)
                sender.flush()
                report.valid += len(valid)
                report.batches += 1
                consumer.commit(asynchronous=False)
                if progress:
                    progress(len(batch))
        finally:
            close_consumer(consumer)

    def _check(self, msg: Message, sender: Sender, report: StreamReport) -> T | None:
        """The valid record of one message, or None after queueing its dead letter."""
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


def validate_topic(
    settings: KafkaSettings,
    source: str,
    group_id: str,
    dead_letters: str = DEAD_LETTERS.name,
    validator: TransactionValidator | None = None,
    idle_s: float = 5.0,
    max_messages: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> StreamReport:
    """Dead-letter every invalid transaction of ``source`` from the group's committed position;
    stops after ``idle_s`` seconds without a message (or ``max_messages``)."""
    loop = ValidatedConsumer(
        settings, source, group_id, validator or TransactionValidator(), dead_letters
    )
    report = StreamReport()
    loop.run(lambda _valid: None, report, idle_s, max_messages, progress)
    return report


@dataclass
class IngestReport(StreamReport):
    """A label ingestion's run: the loop's counts and the label rows it changed."""

    changed: int = 0


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
    """Labels from ``source`` into the PostgreSQL ``labels`` table. The upsert keeps the latest
    ``label_time``, so a replay changes nothing, and a batch whose write met an unreachable
    PostgreSQL is written again on a new connection (``adapters.retry``, within ``retry``'s
    budget) instead of ending the run."""

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
        """Ingest until ``idle_s`` seconds pass without a record (None: until interrupted).
        ``progress`` is called after every batch."""
        loop = ValidatedConsumer(
            self.kafka, self.source, self.group_id, self.validator, self.dead_letters,
            self.batch_size,
        )  # fmt: skip
        report, db = IngestReport(), _Connection(self.postgres)
        where = f"PostgreSQL at {self.postgres.host}:{self.postgres.port}"

        def write(labels: list[Label]) -> None:
            def attempt() -> int:
                conn = db.get()
                changed = upsert_labels(conn, labels)
                conn.commit()
                return changed

            report.changed += retry(attempt, self.retry, where, on_failure=lambda _: db.drop())

        each = (lambda _n: progress(report)) if progress else None
        try:
            loop.run(write, report, idle_s, progress=each)
        finally:
            db.drop()
        return report
