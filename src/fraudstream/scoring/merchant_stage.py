"""The merchant stage: one Spark task per micro-batch advances the merchant book.

Merchants are global (every card bucket sees every merchant) and their features need
the batch's transactions in (event time, transaction id) order, so the stage runs in
a single task on an executor, never on the driver: it takes the book (this worker's
copy when it holds the one of the previous batch, else the save of the newest batch
before this one), reads the labels ingested since its cursor from Postgres, advances
the book through the batch (``MerchantBook.advance``) and saves it under the batch id.

Row shape in: the card stage's accepted rows (``transaction_id``, ``card_id``,
``record``, ``card_features``, ``late``, ``partition``, ``offset``, ``kafka_ts_ms``).
Row shape out (``MERCHANT_SCHEMA``): the same with ``merchant_features`` and ``late``
including the merchant's lateness, ``kind = 'txn'``; and, when states are published,
one ``kind = 'state'`` row per touched merchant (``merchant_id``, ``merchant_state``).

Exactly once: the save is keyed by the batch id, and a batch (a replay after a crash,
or a task Spark runs again) always starts from the save of the batch before it, so no
transaction is counted twice in a merchant's state.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pandas as pd
import psycopg2.extensions
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

from fraudstream.adapters.object_store import Location
from fraudstream.features.codec import encode_merchant
from fraudstream.features.events import LabelEvent, epoch_seconds
from fraudstream.scoring.batch import accepted_from
from fraudstream.scoring.merchants import MerchantBook
from fraudstream.scoring.sinks.base import drop_worker_client, worker_client
from fraudstream.settings import Settings

MERCHANT_SCHEMA = StructType(
    [
        StructField("kind", StringType()),
        StructField("transaction_id", StringType()),
        StructField("card_id", StringType()),
        StructField("record", StringType()),
        StructField("card_features", ArrayType(DoubleType())),
        StructField("merchant_features", ArrayType(DoubleType())),
        StructField("late", BooleanType()),
        StructField("partition", IntegerType()),
        StructField("offset", LongType()),
        StructField("kafka_ts_ms", LongType()),
        StructField("merchant_id", StringType()),
        StructField("merchant_state", BinaryType()),
    ]
)


class BookStore:
    """Merchant-book saves, one per micro-batch id, under ``<checkpoint>/merchant-book/``."""

    FOLDER = "merchant-book"
    KEEP = 5

    def __init__(self, location: Location) -> None:
        self.location = location

    def _ids(self) -> list[int]:
        ids = []
        for name in self.location.list(self.FOLDER):
            stem = name.rsplit("/", 1)[-1]
            if stem.endswith(".bin") and stem[:-4].isdigit():
                ids.append(int(stem[:-4]))
        return sorted(ids)

    def load_before(self, batch_id: int) -> MerchantBook:
        """The book as saved after the latest batch before ``batch_id`` (empty if none)."""
        earlier = [i for i in self._ids() if i < batch_id]
        if not earlier:
            return MerchantBook()
        return MerchantBook.from_bytes(self.location.read(f"{self.FOLDER}/{earlier[-1]:012d}.bin"))

    def save(self, batch_id: int, book: MerchantBook) -> None:
        """Save the book after ``batch_id``; keep the last ``KEEP`` saves."""
        self.location.write(f"{self.FOLDER}/{batch_id:012d}.bin", book.to_bytes())
        for old in self._ids()[: -self.KEEP]:
            self.location.delete(f"{self.FOLDER}/{old:012d}.bin")


def read_new_labels(conn: psycopg2.extensions.connection, book: MerchantBook) -> None:
    """Queue labels ingested since the book's cursor (and resolve earlier unresolved ones).

    Labels are read with a 10 s overlap behind the cursor because rows committed
    concurrently can carry an earlier ``ingested_at``; re-reading one is harmless
    (``apply_label`` is idempotent). A label whose transaction is not in
    ``transactions_raw`` yet waits in ``unresolved`` until it is (or until the stage
    meets its transaction: ``MerchantBook.resolve``).
    """
    since = datetime.fromtimestamp(max(0.0, book.cursor - 10.0), UTC)
    with conn.cursor() as cur:
        cur.execute(
            """SELECT l.transaction_id, r.merchant_id, r.event_time, l.label_time, l.is_fraud,
                      extract(epoch FROM l.ingested_at)
               FROM labels l LEFT JOIN transactions_raw r USING (transaction_id)
               WHERE l.ingested_at > %s""",
            (since,),
        )
        found = cur.fetchall()
        waiting = list(book.unresolved)
        resolved: list[Any] = []
        if waiting:
            cur.execute(
                """SELECT transaction_id, merchant_id, event_time FROM transactions_raw
                   WHERE transaction_id = ANY(%s)""",
                (waiting,),
            )
            resolved = cur.fetchall()
    labels: list[LabelEvent] = []
    for txn_id, merchant, txn_time, label_time, is_fraud, ingested in found:
        book.cursor = max(book.cursor, float(ingested))
        if merchant is None:
            book.unresolved[txn_id] = (epoch_seconds(label_time), bool(is_fraud))
            continue
        labels.append(
            LabelEvent(
                txn_id, merchant, epoch_seconds(txn_time), epoch_seconds(label_time), bool(is_fraud)
            )
        )
    for txn_id, merchant, txn_time in resolved:
        label_time, is_fraud = book.unresolved.pop(txn_id)
        labels.append(LabelEvent(txn_id, merchant, epoch_seconds(txn_time), label_time, is_fraud))
    book.add_labels(labels)


_WORKER_BOOK: dict[str, tuple[int, MerchantBook]] = {}
"""checkpoint -> (the batch id it was saved after, the book): this worker's copy, handed
out only to the next batch and taken out while in use, so a batch that fails midway
leaves nothing behind and its replay starts from the save."""


@dataclass(frozen=True)
class MerchantStage:
    """``mapInPandas`` function of the merchant stage for one micro-batch (one partition)."""

    settings: Settings
    checkpoint: str
    batch_id: int
    emit_states: bool

    def _book(self, store: BookStore) -> MerchantBook:
        kept = _WORKER_BOOK.pop(self.checkpoint, None)
        if kept is not None and kept[0] == self.batch_id - 1:
            return kept[1]
        return store.load_before(self.batch_id)

    def _labels(self, book: MerchantBook) -> None:
        postgres = self.settings.postgres
        key = ("postgres", postgres.host, str(postgres.port), postgres.database)
        conn: psycopg2.extensions.connection = worker_client(
            key, lambda: psycopg2.connect(postgres.dsn())
        )
        try:
            with conn:
                read_new_labels(conn, book)
        except BaseException:
            drop_worker_client(key)
            conn.close()
            raise

    def __call__(self, frames: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        frame = pd.concat(list(frames), ignore_index=True)
        rows = [
            accepted_from(r, f, p, o, ts, late)
            for r, f, p, o, ts, late in zip(
                frame["record"], frame["card_features"], frame["partition"],
                frame["offset"], frame["kafka_ts_ms"], frame["late"], strict=True,
            )
        ]  # fmt: skip
        events = [row.event for row in rows]
        store = BookStore(Location(self.checkpoint, self.settings.s3))
        book = self._book(store)
        self._labels(book)
        book.resolve(events)
        merchant, merchant_late = book.advance(events)
        store.save(self.batch_id, book)
        _WORKER_BOOK[self.checkpoint] = (self.batch_id, book)
        out = frame[[f.name for f in MERCHANT_SCHEMA.fields if f.name in frame.columns]].copy()
        out["kind"] = "txn"
        out["merchant_features"] = [list(m) for m in merchant]
        out["late"] = [bool(a or b) for a, b in zip(frame["late"], merchant_late, strict=True)]
        out["merchant_id"] = None
        out["merchant_state"] = None
        yield out[MERCHANT_SCHEMA.fieldNames()]
        if self.emit_states and events:
            touched = sorted({e.merchant_id for e in events} & set(book.merchants))
            states = pd.DataFrame(
                {n: pd.Series([None] * len(touched), dtype=object) for n in out.columns}
            )
            states["kind"] = "state"
            states["merchant_id"] = touched
            states["merchant_state"] = [encode_merchant(book.merchants[m]) for m in touched]
            yield states[MERCHANT_SCHEMA.fieldNames()]
