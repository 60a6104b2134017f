"""The Spark row shapes between the scorer's steps, in one place.

::

    Kafka `transactions`  ──► card stage (CARD_STAGE_SCHEMA)
    Kafka `transaction_labels` ──► label rows (CARD_STAGE_SCHEMA, kind = 'label')
          ──► merchant stage (MERCHANT_SCHEMA) ──► scoring stage (SCORED_SCHEMA) ──► sinks

``kind`` says what a stage row is: ``txn`` (an accepted transaction), ``dead`` (a dead
letter: ``reason``, ``dead_letter``, ``dead_letter_key``), ``state`` (an entity's new
state for the online store: ``entity`` is ``card`` or ``merchant``, ``state`` its
``features.codec`` bytes, the id in ``card_id`` or ``merchant_id``) or ``label`` (a
``transaction_labels`` record in ``record``; it never leaves the merchant stage).
Clocks are epoch microseconds (UTC); ``kafka_ts_ms`` is the Kafka CreateTime.
"""

from __future__ import annotations

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

CARD_STAGE_SCHEMA = StructType(
    [
        StructField("kind", StringType()),
        StructField("transaction_id", StringType()),
        StructField("card_id", StringType()),
        StructField("merchant_id", StringType()),
        StructField("event_time_us", LongType()),
        StructField("record", StringType()),
        StructField("card_features", ArrayType(DoubleType())),
        StructField("late", BooleanType()),
        StructField("reason", StringType()),
        StructField("dead_letter", BinaryType()),
        StructField("dead_letter_key", BinaryType()),
        StructField("partition", IntegerType()),
        StructField("offset", LongType()),
        StructField("kafka_ts_ms", LongType()),
        StructField("entity", StringType()),
        StructField("state", BinaryType()),
    ]
)
"""The card stage's rows, and the label rows beside them (the merchant stage's input)."""

MERCHANT_SCHEMA = StructType(
    [*CARD_STAGE_SCHEMA.fields, StructField("merchant_features", ArrayType(DoubleType()))]
)
"""The merchant stage's rows: the card stage's ``txn`` rows with their merchant features
(``late`` also set when the merchant had a later transaction), its ``dead`` and card
``state`` rows unchanged, and one merchant ``state`` row per merchant a batch changed."""

TXN_COLUMNS = [
    "transaction_id", "card_id", "merchant_id", "event_time_us", "record", "card_features",
    "late", "partition", "offset", "kafka_ts_ms",
]  # fmt: skip
"""The columns of a ``txn`` row the merchant stage carries (and stores while it holds one)."""

SCORED_SCHEMA = StructType(
    [
        StructField("transaction_id", StringType()),
        StructField("card_id", StringType()),
        StructField("merchant_id", StringType()),
        StructField("amount", DoubleType()),
        StructField("currency", StringType()),
        StructField("record", StringType()),
        StructField("source_partition", IntegerType()),
        StructField("source_offset", LongType()),
        StructField("event_time_us", LongType()),
        StructField("ingest_time_us", LongType()),
        StructField("scored_at_us", LongType()),
        StructField("score", DoubleType()),
        StructField("is_alert", BooleanType()),
        StructField("threshold", DoubleType()),
        StructField("model_version", StringType()),
        StructField("feature_set_version", StringType()),
        StructField("reason_codes", StringType()),
        StructField("reason_detail", StringType()),
        StructField("features", ArrayType(DoubleType())),
        StructField("features_json", StringType()),
        StructField("shadow_score", DoubleType()),
        StructField("shadow_model_version", StringType()),
        StructField("late_event", BooleanType()),
        StructField("prediction", BinaryType()),
    ]
)
"""The scoring stage's rows, one per scored transaction: what every sink writes."""
