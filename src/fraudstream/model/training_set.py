"""A point-in-time training set: the transactions of a window, the labels known at its end.

``fraudstream extract-training-set`` reads it from PostgreSQL and writes three
objects under one location: ``transactions.parquet``, ``labels.parquet`` and
``manifest.json`` (window, cutoff, row and label counts, fraud rate, and the
SHA-256 of both Parquet files). ``train``, ``evaluate`` and ``promote`` read it
back with ``--training-set`` and refuse files that do not match their manifest.

Everything here is pure (bytes in, bytes out); where the bytes live is the
object-store adapter's business.
"""

from __future__ import annotations

import hashlib
import io
import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from fraudstream.schema import arrow_schema
from fraudstream.schema.contract import ContractName

TRANSACTIONS_FILE = "transactions.parquet"
LABELS_FILE = "labels.parquet"
MANIFEST_FILE = "manifest.json"
MANIFEST_VERSION = 1
#: Exit status of ``extract-training-set`` when the window holds too few labels to
#: train on: not a failure of the command, a reason for the caller to skip the run.
EXIT_TOO_FEW_LABELS = 4


class TooFewLabelsError(RuntimeError):
    """The window holds fewer labels or frauds than training needs."""


class TrainingSetError(ValueError):
    """A stored training set that does not match its manifest."""


@dataclass(frozen=True)
class Window:
    """Transactions with ``start <= event_time < as_of``; labels with ``label_time <= as_of``."""

    as_of: datetime
    days: int

    def __post_init__(self) -> None:
        if self.as_of.tzinfo is None:
            raise ValueError(f"{self.as_of} has no time zone; pass an aware UTC datetime")
        if self.days < 1:
            raise ValueError(f"the window needs at least one day, got {self.days}")

    @property
    def start(self) -> datetime:
        return self.as_of - timedelta(days=self.days)


def parquet_bytes(frame: pd.DataFrame, contract: ContractName) -> bytes:
    """The frame as one Parquet file typed by the contract (deterministic for equal frames).

    Optional contract columns the frame lacks are written as nulls.
    """
    schema = arrow_schema(contract)
    present = pa.schema([f for f in schema if f.name in frame.columns])
    given = pa.Table.from_pandas(frame[present.names], schema=present, preserve_index=False)
    table = pa.Table.from_arrays(
        [
            given.column(f.name) if f.name in present.names else pa.nulls(len(frame), f.type)
            for f in schema
        ],
        schema=schema,
    )
    sink = io.BytesIO()
    pq.write_table(table, sink, compression="zstd")
    return sink.getvalue()


def read_parquet_bytes(data: bytes) -> pd.DataFrame:
    return pq.read_table(io.BytesIO(data)).to_pandas()


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def check_labels(labels: pd.DataFrame, min_labels: int, min_frauds: int) -> None:
    """Raise ``TooFewLabelsError`` when the window cannot train a supervised model."""
    frauds = int(labels["is_fraud"].astype(bool).sum()) if len(labels) else 0
    if len(labels) < min_labels or frauds < min_frauds:
        raise TooFewLabelsError(
            f"the window holds {len(labels):,} labels of which {frauds:,} frauds; training "
            f"needs at least {min_labels:,} labels and {min_frauds:,} frauds (lower "
            "--min-labels/--min-frauds, widen --days, or wait for labels to arrive)"
        )


def manifest(
    window: Window, txns: pd.DataFrame, labels: pd.DataFrame, files: dict[str, bytes]
) -> dict[str, Any]:
    """What a training set holds: nothing in it depends on when it was written."""
    frauds = int(labels["is_fraud"].astype(bool).sum()) if len(labels) else 0
    return {
        "manifest_version": MANIFEST_VERSION,
        "as_of": window.as_of.isoformat(),
        "window_start": window.start.isoformat(),
        "window_end": window.as_of.isoformat(),
        "window_days": window.days,
        "label_cutoff": window.as_of.isoformat(),
        "transactions": len(txns),
        "labels": len(labels),
        "frauds": frauds,
        "fraud_rate": frauds / len(txns) if len(txns) else 0.0,
        "files": {
            name: {"sha256": sha256(data), "bytes": len(data)} for name, data in files.items()
        },
    }


def manifest_bytes(content: dict[str, Any]) -> bytes:
    return (json.dumps(content, indent=2, sort_keys=True) + "\n").encode()


def verified(name: str, data: bytes, content: dict[str, Any]) -> bytes:
    """``data`` if its hash is the manifest's, else ``TrainingSetError`` naming the file."""
    expected = content.get("files", {}).get(name, {}).get("sha256")
    if expected != sha256(data):
        raise TrainingSetError(
            f"{name} does not match manifest.json (sha256 {sha256(data)[:12]}..., manifest "
            f"{str(expected)[:12]}...): extract the training set again"
        )
    return data
