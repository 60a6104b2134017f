"""Tables of transactions or labels from files, conformed to the contracts, and their wire form.

A file enters the platform only after ``conform`` has checked every contract
column: a missing required column or a column that cannot be cast to the
contract's type is a ``TableContractError`` naming it, before anything is sent.
Row-level rules (a negative amount, an unknown currency) are the validator's
(``fraudstream.validation``); ``fraudstream.screening`` runs it on the rows of a
conformed table, on their wire form from ``wire_records``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.json as pa_json
import pyarrow.parquet as pq

from fraudstream.schema.contract import ContractName, arrow_schema, fields

FORMATS = {".parquet": "parquet", ".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl"}
_TIME_FIELDS = {"transaction": "event_time", "label": "label_time"}
#: The Kafka key of each contract's records (see ``fraudstream.topics``).
KEY_FIELDS = {"transaction": "card_id", "label": "transaction_id"}


# An empty CSV cell is an absent value, for strings too.
_CSV_OPTIONS = pa_csv.ConvertOptions(strings_can_be_null=True)


class TableContractError(ValueError):
    """A file does not fit a contract; the message names the file, the column and the fix."""


@dataclass(frozen=True)
class Conformed:
    """A table in the contract's schema, sorted by its time column, and what was left out."""

    table: pa.Table
    ignored_columns: tuple[str, ...]


def read_file(path: Path) -> pa.Table:
    """Parquet, CSV (header row) or JSON Lines, chosen by the file's suffix.

    JSON Lines time fields are read as text (Arrow's inference would drop their
    offsets) and converted by ``conform``.
    """
    kind = FORMATS.get(path.suffix.lower())
    if kind is None:
        raise TableContractError(
            f"{path}: unknown format {path.suffix!r}; use one of {sorted(FORMATS)}"
        )
    if not path.is_file():
        raise TableContractError(f"{path}: no such file")
    try:
        if kind == "parquet":
            return pq.read_table(path)
        if kind == "csv":
            return pa_csv.read_csv(path, convert_options=_CSV_OPTIONS)
        times = pa.schema([(f, pa.string()) for f in _TIME_FIELDS.values()])
        options = pa_json.ParseOptions(explicit_schema=times, unexpected_field_behavior="infer")
        table = pa_json.read_json(path, parse_options=options)
        absent = [f for f in times.names if table.column(f).null_count == table.num_rows]
        return table.drop_columns(absent)
    except (pa.ArrowInvalid, OSError) as exc:
        raise TableContractError(f"{path}: cannot be read as {kind}: {exc}") from None


def _cast(column: pa.ChunkedArray, target: pa.DataType, name: str, where: str) -> pa.ChunkedArray:
    if pa.types.is_timestamp(column.type) and column.type.tz is None:
        raise TableContractError(
            f"{where}: column {name!r} holds timestamps without a time zone; the contract "
            "wants instants in UTC (write them with an offset, e.g. 2026-01-31T23:59:59Z)"
        )
    try:
        return column.cast(target)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        detail = str(exc).split("\n")[0]
        raise TableContractError(
            f"{where}: column {name!r} is {column.type}, which does not convert to the "
            f"contract's {target}: {detail}"
        ) from None


def conform(
    table: pa.Table, name: ContractName, where: str = "input", sort: bool = True
) -> Conformed:
    """The table with exactly the contract's columns and types, sorted by its time column
    (in its own row order with ``sort=False``).

    Missing optional columns become nulls; columns outside the contract are
    dropped and reported (a label column in a transaction file never travels
    with the transactions). Nulls in a required column are an error too.
    """
    schema = arrow_schema(name)
    columns = []
    for spec in fields(name):
        target = schema.field(spec.name).type
        if spec.name not in table.column_names:
            if spec.required:
                raise TableContractError(
                    f"{where}: required column {spec.name!r} is missing "
                    f"(found: {', '.join(table.column_names) or 'none'})"
                )
            columns.append(pa.nulls(table.num_rows, target))
            continue
        column = _cast(table.column(spec.name), target, spec.name, where)
        if spec.required and column.null_count:
            raise TableContractError(
                f"{where}: required column {spec.name!r} has {column.null_count} empty value(s)"
            )
        columns.append(column)
    ignored = tuple(c for c in table.column_names if c not in schema.names)
    conformed = pa.Table.from_arrays(columns, schema=schema)
    if not sort:
        return Conformed(conformed, ignored)
    order = pc.sort_indices(conformed, [(_TIME_FIELDS[name], "ascending")])
    return Conformed(conformed.take(order), ignored)


def wire_records(table: pa.Table, name: ContractName) -> Iterator[tuple[int, bytes, bytes]]:
    """(time in us since the epoch, Kafka key, canonical JSON) per row, in table order.

    The time is the row's event time (transactions) or label time (labels).
    Every contract field is written, absent optionals as ``null``; timestamps
    are RFC 3339 UTC with ``Z``; floats keep up to 10 decimals. Encoded a batch
    at a time by pandas' C JSON writer (several times faster than json.dumps per row).
    """
    time_field, key_field = _TIME_FIELDS[name], KEY_FIELDS[name]
    stamped = [f.name for f in table.schema if pa.types.is_timestamp(f.type)]
    for batch in table.to_batches(max_chunksize=8192):
        times = batch.column(time_field)
        text_batch = batch
        for column in stamped:  # every timestamp as RFC 3339 text (a label's event_time too)
            index = batch.schema.get_field_index(column)
            stamps = pc.strftime(batch.column(column), format="%Y-%m-%dT%H:%M:%SZ")
            text_batch = text_batch.set_column(index, column, stamps)
        frame = text_batch.to_pandas(integer_object_nulls=True)
        text = frame.to_json(orient="records", lines=True, double_precision=10)
        values = text.rstrip("\n").encode("utf-8").split(b"\n")  # JSON escapes newlines
        keys = batch.column(key_field).to_pylist()
        micros = times.cast(pa.int64()).to_pylist()
        yield from zip(micros, (str(k).encode("utf-8") for k in keys), values, strict=True)


def encode_row(row: dict[str, object], time_field: str, stamp: str) -> bytes:
    """Canonical JSON of one row: nulls left out, the time field set to ``stamp`` (RFC 3339)."""
    record = {k: v for k, v in row.items() if v is not None}
    record[time_field] = stamp
    return json.dumps(record, ensure_ascii=False).encode("utf-8")


def key_labels(labels: pa.Table, transactions: pa.Table) -> pa.Table:
    """Conformed labels with their transaction's ``merchant_id`` and ``event_time`` filled
    in from ``transactions`` (conformed too) where a label has neither; a label already
    keyed, or whose transaction is not in the table, is left as it is.

    Keyed labels reach their merchant in the stream without a per-transaction link
    (``scoring.merchants``).
    """
    found = pc.index_in(labels.column("transaction_id"), value_set=transactions["transaction_id"])
    keyless = pc.and_(
        pc.is_null(labels.column("merchant_id")), pc.is_null(labels.column("event_time"))
    )
    out = labels
    for name in ("merchant_id", "event_time"):
        theirs = transactions.column(name).take(found)
        filled = pc.if_else(keyless, theirs, labels.column(name))
        out = out.set_column(out.schema.get_field_index(name), out.schema.field(name), filled)
    return out
