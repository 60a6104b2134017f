"""The contracts as data: fields read from the JSON Schema files, the single source.

``transaction.schema.json`` and ``label.schema.json`` in this package define the
wire format. Everything else (the Python model's field list, the Arrow schema of
the Parquet files, the Spark schema of the streaming job, the validator) is
derived from them here, and a drift test compares the hand-written dataclasses
with them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import TYPE_CHECKING, Any, Literal

import pyarrow as pa

if TYPE_CHECKING:
    from pyspark.sql.types import StructType

ContractName = Literal["transaction", "label"]
LogicalType = Literal["string", "timestamp", "float", "integer", "boolean"]

#: The extension keyword bounding the decimal places of a number (JSON Schema's
#: ``multipleOf: 0.01`` is unreliable on binary floats, e.g. 0.07).
DECIMALS_KEYWORD = "x-fraudstream-max-decimal-places"
_TYPE_KEYWORD = "x-fraudstream-type"

_ARROW: dict[LogicalType, pa.DataType] = {
    "string": pa.string(),
    "timestamp": pa.timestamp("us", tz="UTC"),
    "float": pa.float64(),
    "integer": pa.int32(),
    "boolean": pa.bool_(),
}


@dataclass(frozen=True)
class FieldSpec:
    """One field of a contract: its name, logical type and whether it must be present."""

    name: str
    logical_type: LogicalType
    required: bool
    description: str


@cache
def json_schema(name: ContractName) -> dict[str, Any]:
    """The parsed JSON Schema document of a contract (cached; treat as read-only)."""
    text = resources.files(__package__).joinpath(f"{name}.schema.json").read_text("utf-8")
    document: dict[str, Any] = json.loads(text)
    return document


def _logical_type(prop: dict[str, Any]) -> LogicalType:
    if _TYPE_KEYWORD in prop:
        declared: LogicalType = prop[_TYPE_KEYWORD]
        return declared
    kinds = prop["type"] if isinstance(prop["type"], list) else [prop["type"]]
    kind = next(k for k in kinds if k != "null")
    mapping: dict[str, LogicalType] = {
        "string": "string",
        "number": "float",
        "integer": "integer",
        "boolean": "boolean",
    }
    return mapping[kind]


@cache
def fields(name: ContractName) -> tuple[FieldSpec, ...]:
    """The contract's fields in the schema's declaration order."""
    schema = json_schema(name)
    required = set(schema["required"])
    return tuple(
        FieldSpec(key, _logical_type(prop), key in required, prop.get("description", ""))
        for key, prop in schema["properties"].items()
    )


def field_names(name: ContractName) -> tuple[str, ...]:
    return tuple(f.name for f in fields(name))


def required_names(name: ContractName) -> tuple[str, ...]:
    return tuple(f.name for f in fields(name) if f.required)


def arrow_schema(name: ContractName) -> pa.Schema:
    """The Arrow (and Parquet) schema: timestamps are ``timestamp[us, UTC]``, amounts float64."""
    return pa.schema(
        [pa.field(f.name, _ARROW[f.logical_type], nullable=not f.required) for f in fields(name)]
    )


def spark_schema(name: ContractName) -> StructType:
    """The Spark ``StructType`` of a contract, for ``from_json`` on the Kafka value.

    Timestamps are ``TimestampType`` (instants; render them in UTC by setting
    ``spark.sql.session.timeZone=UTC``). Imports pyspark only when called.
    """
    from pyspark.sql import types as t

    spark_types = {
        "string": t.StringType(),
        "timestamp": t.TimestampType(),
        "float": t.DoubleType(),
        "integer": t.IntegerType(),
        "boolean": t.BooleanType(),
    }
    return t.StructType(
        [
            t.StructField(f.name, spark_types[f.logical_type], nullable=not f.required)
            for f in fields(name)
        ]
    )


def currencies() -> frozenset[str]:
    """ISO 4217 codes the transaction contract accepts."""
    return frozenset(json_schema("transaction")["properties"]["currency"]["enum"])
