"""The Spark row shapes between the scorer's steps, in one place.

::

    Kafka `transactions`  ──► card stage (CARD_STAGE_SCHEMA)
    Kafka `transaction_labels` ──► label rows (CARD_STAGE_SCHEMA, kind = 'label')
          ──► merchant stage (MERCHANT_SCHEMA) ──► scoring stage (SCORED_SCHEMA) ──► sinks

A transaction travels as the contract's typed columns (``TRANSACTION_COLUMNS``: the
fields of ``transaction.schema.json`` in its order, the event time as ``event_time_us``),
validated and parsed once, in the card stage; ``transaction_values`` and
``transaction_from`` are the one mapping between those columns and ``schema.Transaction``.

``kind`` says what a stage row is: ``txn`` (an accepted transaction), ``dead`` (a dead
letter: ``reason``, ``dead_letter``, ``dead_letter_key``), ``state`` (an entity's new
state for the online store: ``entity`` is ``card`` or ``merchant``, ``state`` its
``features.codec`` bytes, the id in ``card_id`` or ``merchant_id``) or ``label`` (a
verdict of ``transaction_labels``: ``transaction_id``, ``label_time_us``, ``is_fraud``;
it never leaves the merchant stage). Clocks are epoch microseconds (UTC); ``kafka_ts_ms``
is the Kafka CreateTime.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

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
    TimestampType,
)

from fraudstream.schema import Transaction, epoch_us, from_epoch_us, spark_schema


def _transaction_fields() -> list[StructField]:
    """The transaction contract's fields as stage columns, timestamps as epoch microseconds."""
    return [
        StructField(f"{f.name}_us", LongType())
        if isinstance(f.dataType, TimestampType)
        else StructField(f.name, f.dataType)
        for f in spark_schema("transaction").fields
    ]


TRANSACTION_FIELDS = _transaction_fields()
TRANSACTION_COLUMNS = [f.name for f in TRANSACTION_FIELDS]
"""A transaction's columns in every stage (``transaction_id`` ... ``event_time_us`` ...)."""
_CLOCKS = {f.name for f in TRANSACTION_FIELDS if f.name.endswith("_us")}
_INTEGERS = {f.name for f in TRANSACTION_FIELDS if isinstance(f.dataType, IntegerType)}


def transaction_values(txn: Transaction) -> list[Any]:
    """The transaction as its stage columns, in ``TRANSACTION_COLUMNS`` order."""
    return [
        epoch_us(getattr(txn, name[:-3])) if name in _CLOCKS else getattr(txn, name)
        for name in TRANSACTION_COLUMNS
    ]


def _present(value: Any) -> bool:
    return value is not None and not (isinstance(value, float) and math.isnan(value))


def transaction_from(values: Sequence[Any]) -> Transaction:
    """The transaction of its stage columns (``TRANSACTION_COLUMNS`` order, as pandas hands
    them over: NaN or None for an absent optional, numpy scalars)."""
    fields: dict[str, Any] = {}
    for name, value in zip(TRANSACTION_COLUMNS, values, strict=True):
        if not _present(value):
            fields[name] = None
        elif name in _CLOCKS:
            fields[name[:-3]] = from_epoch_us(int(value))
        elif name in _INTEGERS:
            fields[name] = int(value)
        elif isinstance(value, str):
            fields[name] = value
        else:
            fields[name] = float(value)
    return Transaction(**fields)


CARD_STAGE_SCHEMA = StructType(
    [
        StructField("kind", StringType()),
        *TRANSACTION_FIELDS,
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
        StructField("label_time_us", LongType()),
        StructField("is_fraud", BooleanType()),
    ]
)
"""The card stage's rows, and the label rows beside them (the merchant stage's input)."""

MERCHANT_SCHEMA = StructType(
    [*CARD_STAGE_SCHEMA.fields, StructField("merchant_features", ArrayType(DoubleType()))]
)
"""The merchant stage's rows: the card stage's ``txn`` rows with their merchant features
(``late`` also set when the merchant had a later transaction), its ``dead`` and card
``state`` rows unchanged, and one merchant ``state`` row per merchant a batch changed."""

TXN_COLUMNS = [*TRANSACTION_COLUMNS, "card_features", "late", "partition", "offset", "kafka_ts_ms"]
"""The columns of a ``txn`` row the merchant stage carries (and stores while it holds one)."""

SCORED_SCHEMA = StructType(
    [
        *TRANSACTION_FIELDS,
        StructField("source_partition", IntegerType()),
        StructField("source_offset", LongType()),
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
        StructField("outcome", StringType()),
        StructField("outcome_reason", StringType()),
        StructField("fired_rules", ArrayType(StringType())),
        StructField("rules_version", StringType()),
    ]
)
"""The scoring stage's rows, one per scored transaction: what every sink writes.
``outcome`` is the decision of the rules and the model (approve, review, decline),
``outcome_reason`` the rule or ``model`` that made it ("" for a plain approval),
``fired_rules`` every rule that fired (null: none), ``rules_version`` the set's (null: no
set)."""
