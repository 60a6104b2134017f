"""The streaming query: Kafka -> card buckets (Spark state) -> driver stage -> every sink.

::

    Kafka `transactions` (spark-sql-kafka-0-10 source, offsets in the checkpoint)
      │  value, key, partition, offset, timestamp; bucket = pmod(xxhash64(card_id), N)
      ▼
    groupBy(bucket).transformWithStateInPandas(CardBuckets)      [executors, RocksDB state]
      │  validate (shared validator) -> dead letters, or update_card in event-time order
      │  rows: kind, transaction_id, record, card_features, late, dead_letter, offsets
      ▼
    foreachBatch(BatchHandler)                                    [driver, once per batch]
      │  transactions_raw upsert -> new labels -> MerchantBook.advance -> score + reasons
      ▼
    Postgres upserts │ fraud_predictions / fraud_alerts / dead_letters │ Parquet │ book save

Exactly-once for state: Spark commits the card state with the batch's offsets, and
the merchant book is saved per batch id and reloaded for a replayed batch.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pandas as pd
import psycopg2
import psycopg2.extensions
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F  # noqa: N812 (the PySpark convention)
from pyspark.sql.streaming.stateful_processor import StatefulProcessor, StatefulProcessorHandle
from pyspark.sql.types import (
    ArrayType,
    BinaryType,
    BooleanType,
    DoubleType,
    IntegerType,
    LongType,
    StringType,
    StructField,
    StructType,
)

from fraudstream.adapters.score_sinks import (
    BookStore,
    KafkaOutputs,
    ObjectLocation,
    parquet_objects,
    read_new_labels,
    write_postgres,
    write_raw,
)
from fraudstream.adapters.scorer_metrics import ScorerMetrics
from fraudstream.features.catalogue import FEATURE_SET_VERSION, HISTORY_S
from fraudstream.features.merchant import MerchantState
from fraudstream.scoring.batch import ScoredBatch, accepted_from, score_batch
from fraudstream.scoring.cards import (
    CARD_STATE_LAYOUTS,
    DECODED_CARDS_CAPACITY,
    BucketState,
    DecodedCards,
    LoadedCards,
    Message,
    process_bucket,
)
from fraudstream.scoring.merchants import MerchantBook
from fraudstream.scoring.reload import ModelHolder
from fraudstream.settings import KafkaSettings, Settings
from fraudstream.validation import TransactionValidator

log = logging.getLogger(__name__)

STAGE_SCHEMA = StructType(
    [
        StructField("kind", StringType()),
        StructField("transaction_id", StringType()),
        StructField("card_id", StringType()),
        StructField("record", StringType()),
        StructField("card_features", ArrayType(DoubleType())),
        StructField("late", BooleanType()),
        StructField("reason", StringType()),
        StructField("dead_letter", BinaryType()),
        StructField("dead_letter_key", BinaryType()),
        StructField("partition", IntegerType()),
        StructField("offset", LongType()),
        StructField("kafka_ts_ms", LongType()),
        StructField("card_state", BinaryType()),
    ]
)
# The packed layout: a bucket's card states as one opaque value (``BucketState.to_bytes``).
_BUCKET_STATE = StructType([StructField("packed", BinaryType())])
CARD_STATE_VARIABLE = "card_bucket"
# The per-card layout: card id -> the card's ``features.codec`` bytes.
_CARD_KEY = StructType([StructField("card_id", StringType())])
_CARD_VALUE = StructType([StructField("state", BinaryType())])
CARD_MAP_VARIABLE = "cards"
CARD_STATE_TTL_MS = int((HISTORY_S + 7 * 86_400) * 1000)
"""A card unseen for this long (processing time) leaves the per-card state: the history
horizon plus a week. A card idle for the horizon in event time has a new card's features,
so dropping it changes nothing, as long as the stream's event time does not fall more than
the extra week behind the clock (a backlog or outage longer than that)."""

SPARK_KAFKA_FETCH_MAX_WAIT_MS = 10

WORKER_CARDS = DecodedCards()
"""The decoded card states of this Python worker process, kept across micro-batches (Spark
reuses its workers): a card whose stored bytes are the ones a batch of this worker wrote
is not decoded again. Empty in the driver, which never runs the stage."""

StatePublisher = Callable[[dict[str, bytes], dict[str, MerchantState]], object]
"""Receives each batch's updated card states (codec bytes) and merchant states."""


class CardBuckets(StatefulProcessor):
    """One grouping key per card bucket; its card states in either layout (``scoring.cards``).

    ``per-card``: a MapState with one entry per card, only the touched ones read and
    written, each with a time to live (``CARD_STATE_TTL_MS``) so idle cards leave the
    state. ``packed``: one ValueState holding the whole bucket (``BucketState.to_bytes``).
    """

    def __init__(
        self,
        emit_states: bool = False,
        layout: str = "packed",
        decoded_cards: int = DECODED_CARDS_CAPACITY,
    ) -> None:
        if layout not in CARD_STATE_LAYOUTS:
            raise ValueError(f"card-state layout {layout!r}: use one of {list(CARD_STATE_LAYOUTS)}")
        self.emit_states = emit_states
        self.layout = layout
        self.decoded_cards = decoded_cards

    def init(self, handle: StatefulProcessorHandle) -> None:
        if self.layout == "per-card":
            self.card_map = handle.getMapState(
                CARD_MAP_VARIABLE, _CARD_KEY, _CARD_VALUE, CARD_STATE_TTL_MS
            )
        else:
            self.cards = handle.getValueState(CARD_STATE_VARIABLE, _BUCKET_STATE)
        self.validator = TransactionValidator()
        WORKER_CARDS.resize(self.decoded_cards)

    def _load_card(self, card_id: str) -> bytes | None:
        stored = self.card_map.getValue((card_id,))
        return None if stored is None else bytes(stored[0])

    def handleInputRows(  # noqa: N802 (Spark's name)
        self,
        key: Any,
        rows: Iterator[pd.DataFrame],
        timerValues: Any,  # noqa: N803 (Spark passes it by this name)
    ) -> Iterator[pd.DataFrame]:
        messages = [
            Message(v, k, t, int(p), int(o), int(ts))
            for frame in rows
            for v, k, t, p, o, ts in zip(
                frame["value"],
                frame["key"],
                frame["topic"],
                frame["partition"],
                frame["offset"],
                frame["kafka_ts_ms"],
                strict=True,
            )
        ]
        if self.layout == "per-card":
            loaded = LoadedCards(self._load_card, WORKER_CARDS)
            out = process_bucket(loaded, messages, self.validator, datetime.now(UTC))
            touched = loaded.updated()
            for card_id, blob in touched.items():
                self.card_map.updateValue((card_id,), (blob,))
        else:
            stored = self.cards.get()  # None for a new bucket (saves an exists() round trip)
            bucket = (
                BucketState.from_bytes(stored[0], WORKER_CARDS)
                if stored
                else BucketState(decoded=WORKER_CARDS)
            )
            out = process_bucket(bucket, messages, self.validator, datetime.now(UTC))
            changed = list(bucket.cards)
            if bucket.blobs or bucket.cards:
                self.cards.update((bucket.to_bytes(),))  # re-encodes the touched cards
            else:
                self.cards.clear()
            touched = {c: bucket.blobs[c] for c in changed if c in bucket.blobs}
        if not self.emit_states:
            touched = {}
        frame = pd.DataFrame(
            {
                "kind": ["txn" if r.reason is None else "dead" for r in out],
                "transaction_id": [r.transaction_id for r in out],
                "card_id": [r.card_id for r in out],
                "record": [r.record for r in out],
                "card_features": [r.card_features for r in out],
                "late": [r.late for r in out],
                "reason": [r.reason for r in out],
                "dead_letter": [r.dead_letter for r in out],
                "dead_letter_key": [
                    None
                    if r.reason is None
                    else f"{r.message.topic}/{r.message.partition}/{r.message.offset}".encode()
                    for r in out
                ],
                "partition": [r.message.partition for r in out],
                "offset": [r.message.offset for r in out],
                "kafka_ts_ms": [r.message.timestamp_ms for r in out],
                "card_state": [None] * len(out),
            }
        )
        if touched:
            # Every other column None (object dtype), not NaN: Arrow would refuse a NaN where
            # the schema has an array, and turn the integer columns into floats.
            states = pd.DataFrame(
                {name: pd.Series([None] * len(touched), dtype=object) for name in frame.columns}
            )
            states["kind"] = "state"
            states["card_id"] = list(touched)
            states["card_state"] = list(touched.values())
            frame = pd.concat([frame, states], ignore_index=True)
        yield frame

    def close(self) -> None:
        pass


def kafka_options(kafka: KafkaSettings) -> dict[str, str]:
    """Spark's ``kafka.*`` options for the configured cluster (SASL/TLS as the other clients)."""
    options = {
        "kafka.bootstrap.servers": kafka.bootstrap,
        "kafka.security.protocol": kafka.security_protocol,
        # A task's consumer reads a fixed offset range and then stops; a fetch may wait on
        # the broker up to this long for more data. Measured with the client's default of
        # 500 ms, a batch read of 1,000 records in 6 partitions took 1.8 s, with 10 ms
        # 0.27 s; a micro-batch without state fell from 1.8 s to 0.4 s (docs/scorer.md).
        "kafka.fetch.max.wait.ms": str(SPARK_KAFKA_FETCH_MAX_WAIT_MS),
    }
    if kafka.sasl_mechanism and kafka.sasl_username and kafka.sasl_password:
        module = (
            "org.apache.kafka.common.security.plain.PlainLoginModule"
            if kafka.sasl_mechanism == "PLAIN"
            else "org.apache.kafka.common.security.scram.ScramLoginModule"
        )
        options["kafka.sasl.mechanism"] = kafka.sasl_mechanism
        options["kafka.sasl.jaas.config"] = (
            f'{module} required username="{kafka.sasl_username}" '
            f'password="{kafka.sasl_password.get_secret_value()}";'
        )
    if kafka.ssl_ca_location:
        options["kafka.ssl.truststore.type"] = "PEM"
        options["kafka.ssl.truststore.location"] = str(kafka.ssl_ca_location)
    return options


@dataclass(frozen=True)
class StreamOptions:
    """What one scorer run reads, where it keeps its checkpoint and how it batches."""

    source_topic: str
    checkpoint: str
    parquet_uri: str | None
    buckets: int
    trigger_s: float
    starting_offsets: str = "earliest"
    max_offsets_per_trigger: int | None = None
    emit_states: bool = False
    card_state: str = "packed"
    decoded_cards: int = DECODED_CARDS_CAPACITY


def stage_frame(spark: SparkSession, settings: Settings, options: StreamOptions) -> DataFrame:
    """The Kafka source through the card-bucket stage (rows as ``STAGE_SCHEMA``)."""
    reader = spark.readStream.format("kafka")
    for key, value in kafka_options(settings.kafka).items():
        reader = reader.option(key, value)
    reader = reader.option("subscribe", options.source_topic).option(
        "startingOffsets", options.starting_offsets
    )
    if options.max_offsets_per_trigger:
        reader = reader.option("maxOffsetsPerTrigger", str(options.max_offsets_per_trigger))
    source = reader.load().select(
        "value",
        "key",
        "topic",
        "partition",
        "offset",
        F.unix_millis("timestamp").alias("kafka_ts_ms"),
        F.pmod(
            F.xxhash64(F.get_json_object(F.col("value").cast("string"), "$.card_id")),
            F.lit(options.buckets),
        ).alias("bucket"),
    )
    return source.groupBy("bucket").transformWithStateInPandas(
        statefulProcessor=CardBuckets(
            options.emit_states, options.card_state, options.decoded_cards
        ),
        outputStructType=STAGE_SCHEMA,
        outputMode="Update",
        # Spark's state TTL runs on processing time, and only in that time mode; it also
        # makes Spark run a (cheap) micro-batch per trigger while the topic is idle.
        timeMode="ProcessingTime" if options.card_state == "per-card" else "None",
    )


@dataclass
class BatchReport:
    """What the handler did so far (for the CLI summary and tests)."""

    batches: int = 0
    scored: int = 0
    alerts: int = 0
    dead_letters: int = 0
    late: int = 0
    versions: set[str] = field(default_factory=set)
    latencies: list[float] = field(default_factory=list)


@dataclass
class BatchHandler:
    """foreachBatch: the driver side of one micro-batch (see the module docstring)."""

    settings: Settings
    options: StreamOptions
    champion: ModelHolder
    shadow: ModelHolder | None
    outputs: KafkaOutputs
    books: BookStore
    parquet: ObjectLocation | None
    metrics: ScorerMetrics
    publisher: StatePublisher | None = None
    report: BatchReport = field(default_factory=BatchReport)
    _book: MerchantBook | None = None
    _last_batch: int | None = None
    _conn: psycopg2.extensions.connection | None = None
    _objects: ThreadPoolExecutor = field(
        default_factory=lambda: ThreadPoolExecutor(1, thread_name_prefix="scorer-objects")
    )

    def refresh_models(self) -> None:
        """Poll the aliases when due; called by the driver's watch loop, not by a batch, so a
        promotion is picked up on an idle stream too. A batch reads ``current`` once."""
        for holder in (self.champion, self.shadow):
            if holder is None:
                continue
            before = (holder.counts.loaded, holder.counts.refused, holder.counts.failed)
            holder.refresh()
            after = (holder.counts.loaded, holder.counts.refused, holder.counts.failed)
            for result, b, a in zip(("loaded", "refused", "failed"), before, after, strict=True):
                if a > b:
                    self.metrics.reloads.labels(result).inc(a - b)
            version = holder.current.version if holder.current else None
            self.metrics.set_model(holder.alias, version, FEATURE_SET_VERSION)

    def _book_for(self, batch_id: int) -> MerchantBook:
        if self._book is not None and self._last_batch == batch_id - 1:
            return self._book
        return self.books.load_before(batch_id)

    def __call__(self, frame: DataFrame, batch_id: int) -> None:
        started = time.perf_counter()
        rows = frame.toPandas()  # runs the card stage once; its state commits with the batch
        collected = time.perf_counter()
        self.metrics.stage_seconds.labels("card_stage").observe(collected - started)
        champion = self.champion.current  # swapped only between batches (see refresh_models)
        if champion is None:
            raise RuntimeError(f"no model at @{self.champion.alias}: cannot score")
        try:
            self._handle(rows, batch_id, champion, collected)
        except BaseException:
            self._book, self._last_batch = None, None  # reload from the last save next time
            self.close_database()  # the replay starts on a new connection
            raise

    def _database(self) -> psycopg2.extensions.connection:
        """The handler's connection, opened once and kept across micro-batches.

        A new connection per batch cost about 15 ms of a 1,000-row batch's 130 ms of
        writes (the backend's start and its cold catalog caches; docs/scorer.md)."""
        if self._conn is None or self._conn.closed:
            self._conn = psycopg2.connect(self.settings.postgres.dsn())
        return self._conn

    def close_database(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None and not conn.closed:
            conn.close()

    def _handle(self, rows: pd.DataFrame, batch_id: int, champion: Any, t0: float) -> None:
        dead = rows[rows["kind"] == "dead"]
        txns = rows[rows["kind"] == "txn"]
        accepted = [
            accepted_from(r, f, p, o, ts, late)
            for r, f, p, o, ts, late in zip(
                txns["record"],
                txns["card_features"],
                txns["partition"],
                txns["offset"],
                txns["kafka_ts_ms"],
                txns["late"],
                strict=True,
            )
        ]
        book = self._book_for(batch_id)
        shadow = self.shadow.current if self.shadow else None
        dead_letters = list(zip(dead["dead_letter_key"], dead["dead_letter"], strict=True))
        conn = self._database()
        with conn:  # one transaction: committed here, rolled back (and dropped) on error
            write_raw(conn, accepted, self.options.source_topic)
            read_new_labels(conn, book)
            batch = score_batch(accepted, book, champion, shadow, datetime.now(UTC))
            t1 = time.perf_counter()
            # The sinks overlap: Kafka delivers while Postgres upserts and the object store
            # takes the Parquet and the book. The batch returns only when all three are
            # done, so a failure in any of them fails it and Spark replays it (every
            # write is idempotent, see adapters.score_sinks).
            self.outputs.send(batch, dead_letters)
            objects = self._objects.submit(self._save_objects, batch, batch_id, book)
            write_postgres(conn, batch, self.settings.mlflow.model_name)
        t2 = time.perf_counter()
        self.outputs.wait(timeout_s=60)
        t3 = time.perf_counter()
        objects_s = objects.result()
        self._book, self._last_batch = book, batch_id
        t4 = time.perf_counter()
        self._account(batch, dead, rows, book)
        for stage, seconds in (
            ("features_and_scoring", t1 - t0),
            ("postgres", t2 - t1),  # from the end of scoring, Kafka and objects under way
            ("kafka", t3 - t2),  # what was left to wait for after Postgres committed
            ("parquet_and_book", objects_s),  # on its own thread, beside the other two
            ("sinks", t4 - t1),  # all three, as the batch waits for them
        ):
            self.metrics.stage_seconds.labels(stage).observe(seconds)

    def _save_objects(self, batch: ScoredBatch, batch_id: int, book: MerchantBook) -> float:
        """The Parquet copy and the merchant-book save (on the handler's object thread)."""
        started = time.perf_counter()
        if self.parquet is not None and len(batch):
            for name, data in parquet_objects(batch, batch_id).items():
                self.parquet.put(name, data)
        self.books.save(batch_id, book)
        return time.perf_counter() - started

    def _account(
        self, batch: ScoredBatch, dead: pd.DataFrame, rows: pd.DataFrame, book: MerchantBook
    ) -> None:
        now_ms = time.time() * 1000
        report, metrics = self.report, self.metrics
        latencies = [(now_ms - r.kafka_ts_ms) / 1000 for r in batch.rows]
        for seconds in latencies:
            metrics.latency.observe(seconds)
        report.latencies.extend(latencies[-10_000:])
        alerts = int(batch.scores.alert.sum()) if len(batch) else 0
        late = sum(batch.late)
        metrics.scored.inc(len(batch))
        metrics.alerts.inc(alerts)
        metrics.late.inc(late)
        for reason, n in dead["reason"].value_counts().items():
            metrics.dead_letters.labels(str(reason)).inc(int(n))
        report.batches += 1
        report.scored += len(batch)
        report.alerts += alerts
        report.late += late
        report.dead_letters += len(dead)
        if len(batch):
            report.versions.add(batch.champion.version)
        if self.publisher is not None:
            started = time.perf_counter()
            states = rows[rows["kind"] == "state"]
            touched = {r.txn.merchant_id for r in batch.rows}
            self.publisher(
                dict(zip(states["card_id"], states["card_state"], strict=True)),
                {m: book.merchants[m] for m in touched if m in book.merchants},
            )
            metrics.stage_seconds.labels("online_store").observe(time.perf_counter() - started)
