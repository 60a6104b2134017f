"""The lake: the scorer's Parquet dataset of scored transactions, read back for history.

The Parquet sink writes ``<uri>/batch_id=<id>/date=<event date>/part-*.parquet`` with
every field of the transaction contract (``event_time`` a UTC timestamp), the score and
the features. PostgreSQL keeps the last days (the hot window); the lake keeps all of them.
``read_transactions`` gives a window of it in the shape ``postgres.read_training_window``
gives from ``transactions_raw``, so a training set is built the same from either.
"""

from __future__ import annotations

import io
import re
from datetime import datetime, timedelta

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from fraudstream.adapters.object_store import Location
from fraudstream.schema import arrow_schema, field_names

_DATE = re.compile(r"(?:^|/)date=(\d{4}-\d{2}-\d{2})/[^/]+\.parquet$")


def window_files(location: Location, start: datetime, end: datetime) -> list[str]:
    """The dataset's Parquet files whose ``date=`` partition meets ``[start, end)`` (UTC)."""
    first = start.date().isoformat()
    last = (end - timedelta(microseconds=1)).date().isoformat()
    found = []
    for name in location.files():
        match = _DATE.search(name)
        if match and first <= match[1] <= last:
            found.append(name)
    return found


def read_transactions(location: Location, start: datetime, end: datetime) -> pd.DataFrame:
    """Transactions of the lake with ``start <= event_time < end`` (aware UTC), each once,
    ordered by event time then id; the contract's columns and dtypes, as
    ``postgres.read_training_window`` returns them.

    A transaction written by two batches (a replay after a lost checkpoint) is kept once:
    its fields are the transaction's own, equal in both copies.
    """
    for moment in (start, end):
        if moment.tzinfo is None:
            raise ValueError(f"{moment} has no time zone; pass an aware UTC datetime")
    schema = arrow_schema("transaction")
    names = list(field_names("transaction"))
    tables = []
    for name in window_files(location, start, end):
        table = pq.read_table(io.BytesIO(location.read(name)), columns=names)
        table = table.select(names).cast(schema)  # Spark's timestamps come back naive
        times = table.column("event_time")
        inside = pc.and_(
            pc.greater_equal(times, pa.scalar(start, times.type)),
            pc.less(times, pa.scalar(end, times.type)),
        )
        tables.append(table.filter(inside))
    if not tables:
        return schema.empty_table().to_pandas()
    frame = pa.concat_tables(tables).to_pandas()
    frame = frame.sort_values(["event_time", "transaction_id"], kind="stable")
    return frame.drop_duplicates("transaction_id").reset_index(drop=True)
