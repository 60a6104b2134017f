"""The merchant stage: merchant buckets in Spark state, chained after the card stage.

``groupBy(merchant_bucket).transformWithStateInPandas(MerchantBuckets)`` gets, per
bucket and micro-batch, the card stage's rows of the bucket's merchants and the
batch's label rows for it (``label_rows``): a keyed label (it carries its
transaction's merchant and event time) goes to its merchant's bucket only, a label
without keys to every bucket. ``MerchantBucket.step`` (``scoring.merchants``) does the
work; this module moves its state in and out of Spark's state store:

- ``merchants``: MapState merchant id -> ``features.codec`` bytes, read and written
  only for the merchants the batch touches;
- ``links``: MapState transaction id -> (merchant id, event time), one entry per
  transaction, read only for labels; not written with ``keep_links=False``;
- ``header``: ValueState with the bucket's pending and unresolved labels, its newest
  event time and the transactions the order rule holds back.

Map entries expire ``STATE_TTL_MS`` after their last write (processing time): a
merchant idle for the history horizon has a new merchant's features, and a label on a
transaction older than the horizon counts for nothing (``apply_label``).

Exactly once: Spark commits this state with the batch's offsets (both topics), so a
replayed batch starts from the state its first attempt started from.

Row shape in: ``rows.CARD_STAGE_SCHEMA`` plus ``merchant_bucket``; out:
``rows.MERCHANT_SCHEMA``. ``dead`` and ``state`` rows pass through unchanged.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterator, Sequence
from functools import partial
from typing import Any

import numpy as np
import orjson
import pandas as pd
from pyspark.accumulators import Accumulator
from pyspark.sql import DataFrame
from pyspark.sql import functions as F  # noqa: N812 (the PySpark convention)
from pyspark.sql.streaming.stateful_processor import StatefulProcessor, StatefulProcessorHandle
from pyspark.sql.types import (
    BinaryType,
    BooleanType,
    DoubleType,
    IntegerType,
    LongType,
    StringType,
    StructField,
    StructType,
)

from fraudstream.adapters.spark import freeze_worker_heap
from fraudstream.features.catalogue import STATE_TTL_S
from fraudstream.schema import Label, epoch_us
from fraudstream.scoring.buckets import bucket_of, every_bucket
from fraudstream.scoring.merchants import BucketHeader, LabelIn, MerchantBucket, MerchantTxn
from fraudstream.scoring.rows import CARD_STAGE_SCHEMA, MERCHANT_SCHEMA, TXN_COLUMNS

STATE_TTL_MS = int(STATE_TTL_S * 1000)
"""Card, merchant and link entries leave the state this long (processing time) after
their last write (``features.catalogue.STATE_TTL_S``)."""

_MERCHANT_KEY = StructType([StructField("merchant_id", StringType())])
_MERCHANT_VALUE = StructType([StructField("state", BinaryType())])
_LINK_KEY = StructType([StructField("transaction_id", StringType())])
_LINK_VALUE = StructType(
    [StructField("merchant_id", StringType()), StructField("time", DoubleType())]
)
_HEADER = StructType([StructField("header", BinaryType())])
_TXN_ID, _MERCHANT_ID, _EVENT_TIME_US, _LATE = (
    TXN_COLUMNS.index(c) for c in ("transaction_id", "merchant_id", "event_time_us", "late")
)


LABEL_SCHEMA = StructType(
    [
        StructField("transaction_id", StringType()),
        StructField("label_time_us", LongType()),
        StructField("is_fraud", BooleanType()),
        StructField("merchant_id", StringType()),
        StructField("event_time_us", LongType()),
    ]
)
"""A verdict as the merchant stage reads it (the label contract's fields it uses); a
keyed label's merchant and transaction time fill the transaction's own columns."""


def parse_label(value: bytes | None) -> tuple[str, int, bool, str | None, int | None] | None:
    """A ``transaction_labels`` record's verdict, with its keys when it is keyed; None for a
    record that is not a label (the label ingestion dead-letters those; the scorer
    ignores them). A label with only one of its keys is read as a label without keys."""
    try:
        label = Label.from_json_dict(orjson.loads(value or b""))
        fields = (label.transaction_id, epoch_us(label.label_time), bool(label.is_fraud))
        keys = label.keys
        return (*fields, None, None) if keys is None else (*fields, keys[0], epoch_us(keys[1]))
    except (ValueError, TypeError, KeyError, orjson.JSONDecodeError):
        return None


def parse_labels(
    frames: Iterator[pd.DataFrame], counts: Accumulator[Counter[Any]] | None = None
) -> Iterator[pd.DataFrame]:
    """``mapInPandas`` over the labels topic: each record parsed once, before it is routed
    (``LABEL_SCHEMA``); ``counts`` gets ``("labels", "keyed" | "keyless")``."""
    freeze_worker_heap()
    for frame in frames:
        parsed = [v for v in map(parse_label, frame["value"]) if v is not None]
        if counts is not None and parsed:
            keyed = sum(1 for v in parsed if v[3] is not None)
            counts.add(
                Counter({("labels", "keyed"): keyed, ("labels", "keyless"): len(parsed) - keyed})
            )
        yield pd.DataFrame(parsed, columns=LABEL_SCHEMA.fieldNames())


def label_rows(
    labels: DataFrame, keys: Sequence[int], counts: Accumulator[Counter[Any]] | None = None
) -> DataFrame:
    """``transaction_labels`` records as label rows: a keyed label once, in its merchant's
    bucket; a label without keys once per merchant bucket. ``keys``: the merchant buckets'
    keys (``scoring.buckets``); ``counts``: the batch handler's accumulator, which counts
    the labels."""
    parsed = labels.select("value").mapInPandas(partial(parse_labels, counts=counts), LABEL_SCHEMA)
    targets = F.when(F.col("merchant_id").isNull(), every_bucket(keys)).otherwise(
        F.array(bucket_of("merchant_id", keys))
    )
    out = parsed.select(
        F.lit("label").alias("kind"),
        *LABEL_SCHEMA.fieldNames(),
        F.explode(targets).alias("merchant_bucket"),
    )
    for f in CARD_STAGE_SCHEMA.fields:
        if f.name not in out.columns:
            out = out.withColumn(f.name, F.lit(None).cast(f.dataType))
    return out


_INTEGERS = {
    f.name for f in MERCHANT_SCHEMA.fields if isinstance(f.dataType, IntegerType | LongType)
}


def _python(value: Any, name: str) -> Any:
    """One cell as a plain Python value: None for missing (Arrow turns integer columns
    with nulls into floats on the way in), integers as int, arrays as lists of floats (so
    a held transaction can be stored as JSON)."""
    if isinstance(value, np.ndarray | list):
        return [float(v) for v in value]
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return int(value) if name in _INTEGERS else value


def _values(frame: pd.DataFrame, name: str) -> list[Any]:
    """A column as plain Python values (``_python``); all None when the frame lacks it."""
    if name not in frame.columns:
        return [None] * len(frame)
    return [_python(v, name) for v in frame[name].tolist()]


def _seconds(us: int | None) -> float | None:
    return None if us is None else us / 1e6


def _none_frame(n: int) -> dict[str, pd.Series]:
    # None (object dtype), not NaN: Arrow refuses a NaN where the schema has an array.
    return {name: pd.Series([None] * n, dtype=object) for name in MERCHANT_SCHEMA.fieldNames()}


class MerchantBuckets(StatefulProcessor):
    """One grouping key per merchant bucket (see the module docstring).

    ``delay_s``: the order rule's event-time delay; ``release_ms``: how long (processing
    time) a held transaction waits at most; ``emit_states``: publish changed merchants;
    ``keep_links``: store a link per transaction for labels without keys
    (``MerchantBucket``).
    """

    def __init__(
        self,
        delay_s: float = 0.0,
        release_ms: int = 30_000,
        emit_states: bool = False,
        keep_links: bool = True,
    ):
        self.delay_s = delay_s
        self.release_ms = release_ms
        self.emit_states = emit_states
        self.keep_links = keep_links

    def init(self, handle: StatefulProcessorHandle) -> None:
        freeze_worker_heap()  # once per task
        self.handle = handle
        self.merchants = handle.getMapState(
            "merchants", _MERCHANT_KEY, _MERCHANT_VALUE, STATE_TTL_MS
        )
        self.links = handle.getMapState("links", _LINK_KEY, _LINK_VALUE, STATE_TTL_MS)
        self.header = handle.getValueState("header", _HEADER)

    def _load_merchant(self, merchant_id: str) -> bytes | None:
        stored = self.merchants.getValue((merchant_id,))
        return None if stored is None else bytes(stored[0])

    def _load_link(self, transaction_id: str) -> tuple[str, float] | None:
        stored = self.links.getValue((transaction_id,))
        return None if stored is None else (str(stored[0]), float(stored[1]))

    def handleInputRows(  # noqa: N802 (Spark's name)
        self,
        key: Any,
        rows: Iterator[pd.DataFrame],
        timerValues: Any,  # noqa: N803 (Spark passes it by this name)
    ) -> Iterator[pd.DataFrame]:
        frame = pd.concat(list(rows), ignore_index=True)
        kinds = frame["kind"]
        passing = frame[kinds.isin(["dead", "state"])]
        if len(passing):
            yield pd.DataFrame(
                {name: _values(passing, name) for name in MERCHANT_SCHEMA.fieldNames()}
            )
        held = frame.loc[kinds == "txn"]
        payloads = zip(*(_values(held, name) for name in TXN_COLUMNS), strict=True)
        txns = [
            MerchantTxn(p[_TXN_ID], p[_MERCHANT_ID], p[_EVENT_TIME_US] / 1e6, list(p))
            for p in payloads
        ]
        label_frame = frame.loc[kinds == "label"]
        labels = [
            LabelIn(str(tid), int(lt) / 1e6, bool(fraud), merchant, _seconds(txn_us))
            for tid, lt, fraud, merchant, txn_us in zip(
                label_frame["transaction_id"].tolist(),
                label_frame["label_time_us"].tolist(),
                label_frame["is_fraud"].tolist(),
                _values(label_frame, "merchant_id"),
                _values(label_frame, "event_time_us"),
                strict=True,
            )
        ]
        now_ms = timerValues.getCurrentProcessingTimeInMs()
        yield from self._step(txns, labels, release_all=False, now_ms=now_ms)

    def handleExpiredTimer(  # noqa: N802 (Spark's name)
        self,
        key: Any,
        timerValues: Any,  # noqa: N803 (Spark passes it by this name)
        expiredTimerInfo: Any,  # noqa: N803
    ) -> Iterator[pd.DataFrame]:
        yield from self._step([], [], release_all=True, now_ms=None)

    def _step(
        self, txns: list[MerchantTxn], labels: list[LabelIn], release_all: bool, now_ms: int | None
    ) -> Iterator[pd.DataFrame]:
        stored = self.header.get()
        bucket = MerchantBucket(
            self._load_merchant,
            self._load_link,
            BucketHeader.from_bytes(bytes(stored[0]) if stored else None),
            keep_links=self.keep_links,
        )
        released = bucket.step(txns, labels, self.delay_s, release_all)
        for transaction_id, (merchant_id, time) in bucket.links.items() if self.keep_links else ():
            self.links.updateValue((transaction_id,), (merchant_id, time))
        updated = bucket.updated()
        for merchant_id, blob in updated.items():
            self.merchants.updateValue((merchant_id,), (blob,))
        self.header.update((bucket.header.to_bytes(),))
        if now_ms is not None:
            # The release timer fires only after release_ms without input for this bucket
            # (the stream's tail, an idle topic): while rows arrive, the event-time rule
            # releases them.
            for timer in list(self.handle.listTimers()):
                self.handle.deleteTimer(timer)
            if bucket.header.held:
                self.handle.registerTimer(now_ms + self.release_ms)
        if released:
            frame = pd.DataFrame(_none_frame(len(released)))
            for i, name in enumerate(TXN_COLUMNS):
                frame[name] = pd.Series([r.txn.payload[i] for r in released], dtype=object)
            frame["late"] = [bool(r.txn.payload[_LATE]) or r.late for r in released]
            frame["merchant_features"] = [list(r.features) for r in released]
            frame["kind"] = "txn"
            yield frame
        if self.emit_states and updated:
            states = pd.DataFrame(_none_frame(len(updated)))
            states["kind"] = "state"
            states["entity"] = "merchant"
            states["merchant_id"] = list(updated)
            states["state"] = list(updated.values())
            yield states

    def close(self) -> None:
        pass
