"""Writing a lake the way the scorer's Parquet sink lays it out, without Spark."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq


def write_lake(root: Path, batch: int, transactions: pd.DataFrame) -> None:
    """``transactions`` (the contract's columns) under ``root/batch_id=<batch>/date=<day>/``,
    one file per event day, timestamps naive UTC (as Spark writes them), with a score."""
    frame = transactions.copy()
    frame["event_time"] = frame["event_time"].dt.tz_convert("UTC").dt.tz_localize(None)
    frame["score"] = 0.5
    for day, part in frame.groupby(frame["event_time"].dt.date):
        folder = root / f"batch_id={batch:012d}" / f"date={day.isoformat()}"
        folder.mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.Table.from_pandas(part, preserve_index=False), folder / "part-0.parquet")
