"""Parquet sink: the scored rows with their transaction and features, through Spark's writer.

Each micro-batch writes ``<uri>/batch_id=<id>/date=<event date>/part-*.parquet``
(overwriting that batch's folder, so a replayed batch leaves one copy), one column
per feature in catalogue order. Read the whole folder as one dataset: ``batch_id`` and
``date`` come back as partition columns. The write is retried from the driver while the
object store is unreachable (the overwrite makes a second write leave one copy). The
write is what runs the micro-batch's scoring job (``sinks.base``): a write run again
scores the batch again, and the sinks in its tasks write again what they wrote, which
changes nothing (they are idempotent by key).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar, Literal

from fraudstream.adapters.retry import RetryPolicy, retry
from fraudstream.features.catalogue import feature_names
from fraudstream.schema import field_names
from fraudstream.scoring.sinks.base import Sink

if TYPE_CHECKING:
    from pyspark.sql import DataFrame


class ParquetSink(Sink):
    name: ClassVar[str] = "parquet"
    reads: ClassVar[Literal["frame"]] = "frame"

    def __init__(self, uri: str, retry: RetryPolicy | None = None) -> None:
        self.uri = uri.rstrip("/")
        self.retry = retry or RetryPolicy()

    def rows(self, scored: DataFrame) -> DataFrame:
        """The Parquet rows of the scored rows (``rows.SCORED_SCHEMA``)."""
        from pyspark.sql import functions as F  # noqa: N812 (the PySpark convention)

        timestamps = [
            F.timestamp_micros(f"{name}_us").alias(name)
            for name in ("event_time", "ingest_time", "scored_at")
        ]
        features = [F.col("features")[j].alias(n) for j, n in enumerate(feature_names())]
        # The rest of the transaction contract, so the lake alone rebuilds training sets
        # (adapters.lake) for days PostgreSQL no longer holds.
        named = {"transaction_id", "event_time", "card_id", "merchant_id", "amount", "currency"}
        contract = [n for n in field_names("transaction") if n not in named]
        return scored.select(
            "transaction_id",
            *timestamps,
            "card_id",
            "merchant_id",
            "amount",
            "currency",
            *contract,
            "score",
            "is_alert",
            "threshold",
            "model_version",
            "feature_set_version",
            "late_event",
            "outcome",
            "outcome_reason",
            "fired_rules",
            "rules_version",
            *features,
            F.to_date(F.timestamp_micros("event_time_us")).cast("string").alias("date"),
        )

    def save(self, scored: DataFrame, batch_id: int) -> None:
        """Spark's writer runs the batch's tasks; the driver only plans the write and
        commits it."""
        folder = f"{self.uri}/batch_id={batch_id:012d}"
        frame = self.rows(scored)
        retry(
            lambda: frame.write.mode("overwrite").partitionBy("date").parquet(folder),
            self.retry,
            f"the Parquet copy at {folder}",
        )
