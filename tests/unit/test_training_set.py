"""Training sets: manifest, label check, hash verification, local locations, model events."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import jsonschema
import numpy as np
import pandas as pd
import pytest

from fraudstream.adapters.object_store import Location, LocationError, read_uri
from fraudstream.model import training_set as ts
from fraudstream.model.events import alias_moved, model_event_schema
from fraudstream.model.training import sample_negatives
from fraudstream.settings import S3Settings

AS_OF = datetime(2026, 3, 1, tzinfo=UTC)
CLI = [str(Path(sys.executable).parent / "fraudstream")]


def frames() -> tuple[pd.DataFrame, pd.DataFrame]:
    times = pd.date_range(AS_OF - timedelta(days=3), periods=4, freq="D", tz="UTC")
    txns = pd.DataFrame(
        {
            "transaction_id": [f"t{i}" for i in range(4)],
            "event_time": times,
            "card_id": "c1",
            "merchant_id": "m1",
            "amount": [10.0, 20.5, 3.25, 7.0],
            "currency": "EUR",
        }
    )
    labels = pd.DataFrame(
        {
            "transaction_id": ["t0", "t1"],
            "is_fraud": [True, False],
            "label_time": [AS_OF - timedelta(hours=5), AS_OF - timedelta(hours=1)],
            "source": ["chargeback", "analyst"],
        }
    )
    return txns, labels


def test_the_manifest_describes_the_files_and_nothing_time_dependent() -> None:
    txns, labels = frames()
    files = {
        ts.TRANSACTIONS_FILE: ts.parquet_bytes(txns, "transaction"),
        ts.LABELS_FILE: ts.parquet_bytes(labels, "label"),
    }
    window = ts.Window(AS_OF, 35)
    content = ts.manifest(window, txns, labels, files)
    assert content["window_start"] == (AS_OF - timedelta(days=35)).isoformat()
    assert content["label_cutoff"] == AS_OF.isoformat()
    assert (content["transactions"], content["labels"], content["frauds"]) == (4, 2, 1)
    assert content["fraud_rate"] == pytest.approx(0.25)
    again = {
        name: ts.parquet_bytes(f, c)
        for name, f, c in (
            (ts.TRANSACTIONS_FILE, txns, "transaction"),
            (ts.LABELS_FILE, labels, "label"),
        )
    }
    assert ts.manifest_bytes(ts.manifest(window, txns, labels, again)) == ts.manifest_bytes(content)
    back = ts.read_parquet_bytes(ts.verified(ts.LABELS_FILE, files[ts.LABELS_FILE], content))
    assert back["transaction_id"].tolist() == ["t0", "t1"]
    with pytest.raises(ts.TrainingSetError, match=r"labels\.parquet does not match"):
        ts.verified(ts.LABELS_FILE, files[ts.TRANSACTIONS_FILE], content)


def test_too_few_labels_names_the_counts_and_the_way_out() -> None:
    _, labels = frames()
    ts.check_labels(labels, min_labels=2, min_frauds=1)
    with pytest.raises(ts.TooFewLabelsError, match=r"2 labels of which 1 frauds.*--min-frauds"):
        ts.check_labels(labels, min_labels=2, min_frauds=2)
    with pytest.raises(ts.TooFewLabelsError):
        ts.check_labels(labels.iloc[:0], min_labels=0, min_frauds=1)
    with pytest.raises(ValueError, match="no time zone"):
        ts.Window(datetime(2026, 3, 1), 35)


def test_local_locations_write_read_and_name_what_is_missing(tmp_path: Path) -> None:
    s3 = S3Settings()
    where = Location(str(tmp_path / "set"), s3)
    where.write("a.bin", b"one")
    where.write("a.bin", b"two")  # replaced, no temporary file left behind
    assert where.read("a.bin") == b"two"
    assert sorted(p.name for p in (tmp_path / "set").iterdir()) == ["a.bin"]
    assert read_uri(str(tmp_path / "set" / "a.bin"), s3) == b"two"
    with pytest.raises(LocationError, match="does not exist"):
        where.read("b.bin")
    with pytest.raises(LocationError, match="s3://BUCKET/PREFIX"):
        Location("gs://bucket/x", s3)
    s3_location = Location("s3://bucket/some/prefix/", s3)
    assert (s3_location.bucket, s3_location.prefix) == ("bucket", "some/prefix")


def test_negative_sampling_keeps_frauds_and_leaves_validation_alone() -> None:
    rng = np.random.default_rng(1)
    y = (rng.uniform(size=20_000) < 0.005).astype(int)
    folds = [(np.arange(0, 15_000), np.arange(15_000, 20_000))]
    ((train, val),) = sample_negatives(folds, y, negatives_per_fraud=10)
    frauds = np.flatnonzero(y[:15_000])
    assert set(frauds) <= set(train)
    assert (y[train] == 0).sum() == 10 * len(frauds)
    assert np.all(np.diff(train) > 0)  # still in event-time order
    np.testing.assert_array_equal(val, folds[0][1])
    assert sample_negatives(folds, y, None)[0][0] is folds[0][0]


def test_alias_moved_events_match_their_schema() -> None:
    event = alias_moved("fraud-detector", "champion", "7", None, "1", 0.42, "first", AS_OF)
    jsonschema.validate(event, model_event_schema(), format_checker=jsonschema.FormatChecker())
    assert event["at"] == "2026-03-01T00:00:00Z"
    assert set(event) == set(model_event_schema()["required"])
    for broken in ({**event, "version": "v7"}, {k: v for k, v in event.items() if k != "reason"}):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(broken, model_event_schema())


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=120, check=False)


def test_cli_errors_name_the_problem_and_the_fix(tmp_path: Path) -> None:
    txns, labels = frames()
    files = {
        ts.TRANSACTIONS_FILE: ts.parquet_bytes(txns, "transaction"),
        ts.LABELS_FILE: ts.parquet_bytes(labels, "label"),
    }
    where = Location(str(tmp_path), S3Settings())
    for name, data in files.items():
        where.write(name, data)
    content = ts.manifest(ts.Window(AS_OF, 35), txns, labels, files)
    where.write(ts.MANIFEST_FILE, ts.manifest_bytes(content))
    where.write(ts.LABELS_FILE, files[ts.TRANSACTIONS_FILE])  # tampered after extraction

    tampered = _cli("evaluate", "--model", "champion", "--training-set", str(tmp_path))
    assert tampered.returncode == 2
    assert "labels.parquet does not match manifest.json" in " ".join(tampered.stderr.split())
    missing = _cli("train", "--training-set", str(tmp_path / "nowhere"))
    assert missing.returncode == 2
    assert "extract-training-set" in missing.stderr
    for args, hint in (
        (("--as-of", "yesterday", "--output", str(tmp_path)), "not an ISO date"),
        (("--as-of", "2026-03-01", "--output", "gs://bucket/x"), "s3://BUCKET/PREFIX"),
    ):
        bad = _cli("extract-training-set", *args)
        assert bad.returncode == 2, bad.stderr
        assert hint in " ".join(bad.stderr.split())
