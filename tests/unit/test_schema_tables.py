"""Files enter only through the contract: clear errors before sending, exact wire form."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from fraudstream.schema import arrow_schema
from fraudstream.schema.tables import (
    TableContractError,
    conform,
    key_labels,
    read_file,
    wire_records,
)
from fraudstream.validation import LabelValidator, Transaction, TransactionValidator

NOW = datetime(2100, 1, 1, tzinfo=UTC)
CSV = (
    "transaction_id,event_time,card_id,merchant_id,amount,currency,is_fraud\n"
    "t2,2026-01-01T00:00:02Z,c1,m1,2.5,EUR,0\n"
    "t1,2026-01-01T01:00:01+01:00,c1,m1,12,USD,1\n"
)


def test_csv_is_conformed_sorted_and_stripped_of_non_contract_columns(tmp_path: Path) -> None:
    path = tmp_path / "tx.csv"
    path.write_text(CSV)
    result = conform(read_file(path), "transaction", str(path))
    assert result.table.schema.equals(arrow_schema("transaction"))
    assert result.table.column("transaction_id").to_pylist() == ["t1", "t2"]
    assert result.ignored_columns == ("is_fraud",)
    assert result.table.column("lat").null_count == 2


def test_jsonl_and_parquet_read_alike(tmp_path: Path) -> None:
    rows = [
        {"transaction_id": "a", "event_time": "2026-01-01T00:00:00Z", "card_id": "c",
         "merchant_id": "m", "amount": 1.25, "currency": "EUR", "lat": 1.5},
    ]  # fmt: skip
    jsonl = tmp_path / "tx.jsonl"
    jsonl.write_text("".join(json.dumps(r) + "\n" for r in rows))
    read = conform(read_file(jsonl), "transaction")
    assert read.ignored_columns == ()
    from_json = read.table
    assert from_json.column("event_time").to_pylist() == [datetime(2026, 1, 1, tzinfo=UTC)]
    parquet = tmp_path / "tx.parquet"
    pq.write_table(from_json, parquet)
    assert conform(read_file(parquet), "transaction").table.equals(from_json)


@pytest.mark.parametrize(
    ("text", "column"),
    [
        (CSV.replace("merchant_id,", "shop,"), "merchant_id"),
        (CSV.replace(",2.5,", ",two,"), "amount"),
        (CSV.replace("2026-01-01T00:00:02Z", "2026-01-01T00:00:02"), "event_time"),
        (CSV.replace(",c1,m1,2.5", ",,m1,2.5"), "card_id"),
    ],
)
def test_a_missing_or_ill_typed_column_is_named(tmp_path: Path, text: str, column: str) -> None:
    path = tmp_path / "tx.csv"
    path.write_text(text)
    with pytest.raises(TableContractError, match=f"'{column}'"):
        conform(read_file(path), "transaction", str(path))


def test_unknown_formats_and_missing_files_are_named(tmp_path: Path) -> None:
    with pytest.raises(TableContractError, match="unknown format"):
        read_file(tmp_path / "tx.xlsx")
    with pytest.raises(TableContractError, match="no such file"):
        read_file(tmp_path / "absent.csv")


def test_wire_records_round_trip_through_the_validator() -> None:
    awkward = 'say "hi"\n/ü\\'
    table = pa.table(
        {
            "transaction_id": ["t1", "t2"],
            "event_time": pa.array([1_767_225_600_000_001, 1_767_225_601_000_000],
                                   type=pa.timestamp("us", tz="UTC")),
            "card_id": ["c1", awkward],
            "merchant_id": ["m1", "m2"],
            "amount": [0.07, 123_456_789.12],
            "currency": ["EUR", "JPY"],
        }
    )  # fmt: skip
    conformed = conform(table, "transaction").table
    records = list(wire_records(conformed, "transaction"))
    assert [r[0] for r in records] == [1_767_225_600_000_001, 1_767_225_601_000_000]
    first = TransactionValidator().validate(records[0][2], NOW)
    second = TransactionValidator().validate(records[1][2], NOW)
    assert isinstance(first, Transaction)
    assert isinstance(second, Transaction)
    assert first.event_time == datetime(2026, 1, 1, 0, 0, 0, 1, tzinfo=UTC)
    assert first.amount == 0.07
    assert second.amount == 123_456_789.12
    assert second.card_id == awkward
    assert records[1][1] == awkward.encode()


def test_labels_get_their_transactions_keys_on_the_wire() -> None:
    """A label without keys gets its transaction's merchant and event time; a keyed label
    keeps its own; a label on a transaction the table lacks stays without keys. Each
    record is a valid label."""
    us = pa.timestamp("us", tz="UTC")
    txns = conform(
        pa.table(
            {
                "transaction_id": ["t1", "t2"],
                "event_time": pa.array([1_767_225_600_000_001, 1_767_225_601_000_000], type=us),
                "card_id": ["c1", "c2"],
                "merchant_id": ["m1", "m2"],
                "amount": [1.0, 2.0],
                "currency": ["EUR", "EUR"],
            }
        ),
        "transaction",
    ).table
    labels = conform(
        pa.table(
            {
                "transaction_id": ["t1", "t2", "t9"],
                "merchant_id": [None, "m-own", None],
                "event_time": pa.array([None, 1_767_225_601_000_000, None], type=us),
                "is_fraud": [True, True, False],
                "label_time": pa.array([1_767_312_000_000_000] * 3, type=us),
                "source": ["chargeback", "chargeback", "analyst"],
            }
        ),
        "label",
    ).table
    records = list(wire_records(key_labels(labels, txns), "label"))
    parsed = [LabelValidator().validate(value, NOW) for _, _, value in records]
    keys = [(lb.transaction_id, lb.merchant_id, lb.event_time) for lb in parsed]  # type: ignore[union-attr]
    assert keys == [
        ("t1", "m1", datetime(2026, 1, 1, 0, 0, 0, 1, tzinfo=UTC)),
        ("t2", "m-own", datetime(2026, 1, 1, 0, 0, 1, tzinfo=UTC)),
        ("t9", None, None),
    ]
