"""Training sets between PostgreSQL or the lake and a location (a directory or an S3 prefix).

A use case over three adapters (``postgres``, ``lake``, ``object_store``) and the model's
training-set format (``model.training_set``), so it lives above ``adapters``.

``extract`` reads the point-in-time window with ``postgres.read_training_window``, or,
for a window older than PostgreSQL's hot window, its transactions from the scorer's
Parquet lake (``lake.read_transactions``) and their labels from PostgreSQL (labels are
kept whole); both give equal frames for a window both hold. It writes the three
objects of ``model.training_set`` (rows the stream's row policy refuses left out and
counted, ``fraudstream.screening``); ``load`` reads them back and checks them against
the manifest. The same as-of and location always write
the same keys, and equal database content gives equal bytes, so a retried
extraction replaces its own output and nothing else.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal

import pandas as pd

from fraudstream.adapters import lake
from fraudstream.adapters.object_store import Location
from fraudstream.adapters.postgres import first_day_held, read_labels_of, read_training_window
from fraudstream.model import training_set as ts
from fraudstream.screening import screen_frame
from fraudstream.settings import Settings

Source = Literal["auto", "postgres", "lake"]


def chosen_source(settings: Settings, window: ts.Window, source: Source) -> str:
    """``auto``: the lake when retention has dropped days the window covers, else PostgreSQL."""
    if source != "auto":
        return source
    held_from = first_day_held(settings.postgres, "transactions_raw")
    return "lake" if held_from is not None and window.start.date() < held_from else "postgres"


def read_window(
    settings: Settings, window: ts.Window, source: str, lake_uri: str
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(transactions, labels) of the window at ``window.as_of``, from PostgreSQL or the lake."""
    if source == "postgres":
        return read_training_window(settings.postgres, window.start, window.as_of, window.as_of)
    txns = lake.read_transactions(Location(lake_uri, settings.s3), window.start, window.as_of)
    labels = read_labels_of(settings.postgres, txns["transaction_id"], window.as_of)
    return txns, labels


@dataclass(frozen=True)
class TrainingSet:
    transactions: pd.DataFrame
    labels: pd.DataFrame
    manifest: dict[str, Any]
    uri: str


def extract(
    settings: Settings,
    window: ts.Window,
    uri: str,
    minimum: tuple[int, int],
    strict: bool = False,
    source: Source = "auto",
    lake_uri: str | None = None,
) -> dict[str, Any]:
    """Write the window's training set under ``uri``; returns its manifest.

    ``source`` picks where the transactions come from (``chosen_source``); the lake is
    ``lake_uri``, by default the scorer's (``s3://<dataset bucket>/scored``). The manifest
    records the source.

    ``minimum`` is (labels, frauds). Transactions the row policy refuses are left
    out with their labels (``RowPolicyError`` with ``strict``) and counted under
    the manifest's ``row_policy``. The policy's clock is ``window.as_of``, the
    moment the set describes, not the wall clock: the same window gives the same
    set whenever it is extracted. Raises
    ``TooFewLabelsError`` before writing anything when the labels known at
    ``window.as_of`` cannot train a model.
    """
    location = Location(uri, settings.s3)
    picked = chosen_source(settings, window, source)
    lake_uri = lake_uri or f"s3://{settings.s3.dataset_bucket}/scored"
    txns, labels = read_window(settings, window, picked, lake_uri)
    table = "transactions_raw" if picked == "postgres" else lake_uri
    where = f"{table} from {window.start.isoformat()} to {window.as_of.isoformat()}"
    txns, screened = screen_frame(txns, "transaction", window.as_of, where)
    screened.check(strict)
    labels = labels[labels["transaction_id"].isin(txns["transaction_id"])].reset_index(drop=True)
    ts.check_labels(labels, *minimum)
    files = {
        ts.TRANSACTIONS_FILE: ts.parquet_bytes(txns, "transaction"),
        ts.LABELS_FILE: ts.parquet_bytes(labels, "label"),
    }
    content = {
        **ts.manifest(window, txns, labels, files),
        "row_policy": screened.summary(),
        "source": picked,
    }
    for name, data in files.items():
        location.write(name, data)
    # The manifest goes last: a reader that finds it finds the files it describes.
    location.write(ts.MANIFEST_FILE, ts.manifest_bytes(content))
    return content


def load(settings: Settings, uri: str) -> TrainingSet:
    """The training set under ``uri``, each file verified against ``manifest.json``."""
    location = Location(uri, settings.s3)
    content: dict[str, Any] = json.loads(location.read(ts.MANIFEST_FILE))
    frames = [
        ts.read_parquet_bytes(ts.verified(name, location.read(name), content))
        for name in (ts.TRANSACTIONS_FILE, ts.LABELS_FILE)
    ]
    return TrainingSet(frames[0], frames[1], content, location.uri)
