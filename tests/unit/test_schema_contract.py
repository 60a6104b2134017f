"""The JSON Schema files are the single source; every derived form must agree with them."""

from __future__ import annotations

import dataclasses
import types
import typing
from datetime import UTC, datetime, timedelta, timezone

import pyarrow as pa
import pytest
from jsonschema import Draft202012Validator

from fraudstream.schema import (
    Label,
    Transaction,
    arrow_schema,
    field_names,
    fields,
    format_timestamp,
    json_schema,
    parse_timestamp,
    required_names,
)
from fraudstream.schema.contract import ContractName

_PY_FOR_LOGICAL = {
    "string": str,
    "timestamp": datetime,
    "float": float,
    "integer": int,
    "boolean": bool,
}
MODELS: list[tuple[ContractName, type]] = [("transaction", Transaction), ("label", Label)]


@pytest.mark.parametrize("name", ["transaction", "label"])
def test_schema_files_are_valid_json_schema(name: ContractName) -> None:
    Draft202012Validator.check_schema(json_schema(name))


def test_transaction_contract_has_the_agreed_fields() -> None:
    assert required_names("transaction") == (
        "transaction_id",
        "event_time",
        "card_id",
        "merchant_id",
        "amount",
        "currency",
    )
    assert set(field_names("transaction")) - set(required_names("transaction")) == {
        "customer_id",
        "merchant_category",
        "channel",
        "country",
        "lat",
        "lon",
        "device_id",
        "ip",
        "schema_version",
    }
    assert "is_fraud" not in field_names("transaction")
    assert "fraud_scenario" not in field_names("transaction")


def _base_type(annotation: object) -> tuple[type, bool]:
    """(python type, optional) of a resolved dataclass annotation."""
    args = typing.get_args(annotation)
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        non_null = [a for a in args if a is not type(None)]
        base, _ = _base_type(non_null[0])
        return base, True
    if origin is typing.Literal:
        return type(args[0]), False
    assert isinstance(annotation, type)
    return annotation, False


@pytest.mark.parametrize(("name", "model"), MODELS)
def test_dataclass_matches_the_json_schema(name: ContractName, model: type) -> None:
    hints = typing.get_type_hints(model)
    declared = {f.name: f for f in dataclasses.fields(model)}
    assert set(declared) == set(field_names(name))
    for spec in fields(name):
        base, optional = _base_type(hints[spec.name])
        assert base is _PY_FOR_LOGICAL[spec.logical_type], spec.name
        assert optional is (not spec.required), spec.name
        has_default = declared[spec.name].default is not dataclasses.MISSING
        assert has_default is (not spec.required), spec.name


@pytest.mark.parametrize(("name", "model"), MODELS)
def test_arrow_schema_matches_the_json_schema(name: ContractName, model: type) -> None:
    schema = arrow_schema(name)
    assert schema.names == list(field_names(name))
    for spec in fields(name):
        field = schema.field(spec.name)
        assert field.nullable is (not spec.required)
        if spec.logical_type == "timestamp":
            assert field.type == pa.timestamp("us", tz="UTC")


def test_spark_schema_matches_the_json_schema() -> None:
    pytest.importorskip("pyspark")
    from pyspark.sql import types as t

    from fraudstream.schema import spark_schema

    schema = spark_schema("transaction")
    assert schema.fieldNames() == list(field_names("transaction"))
    by_name = {f.name: f for f in schema.fields}
    assert isinstance(by_name["event_time"].dataType, t.TimestampType)
    assert isinstance(by_name["amount"].dataType, t.DoubleType)
    assert by_name["card_id"].nullable is False
    assert by_name["lat"].nullable is True


def test_transaction_round_trips_through_its_wire_form() -> None:
    tx = Transaction(
        transaction_id="t1",
        event_time=datetime(2026, 3, 1, 12, 30, 0, 250000, tzinfo=UTC),
        card_id="c1",
        merchant_id="m1",
        amount=12.5,
        currency="EUR",
        channel="pos",
        lat=52.5,
        lon=13.4,
    )
    wire = tx.to_json_dict()
    assert wire["event_time"] == "2026-03-01T12:30:00.250000Z"
    assert "ip" not in wire
    Draft202012Validator(json_schema("transaction")).validate(wire)
    assert Transaction.from_json_dict(wire) == tx


def test_label_round_trips_through_its_wire_form() -> None:
    label = Label("t1", True, datetime(2026, 3, 9, tzinfo=UTC), "chargeback", "card_testing")
    wire = label.to_json_dict()
    Draft202012Validator(json_schema("label")).validate(wire)
    assert Label.from_json_dict(wire) == label


def test_timestamps_must_be_aware_utc() -> None:
    with pytest.raises(ValueError, match="naive"):
        format_timestamp(datetime(2026, 1, 1))
    with pytest.raises(ValueError, match="UTC"):
        parse_timestamp("2026-01-01T00:00:00+02:00")
    with pytest.raises(ValueError, match="UTC"):
        parse_timestamp("2026-01-01T00:00:00")
    shifted = datetime(2026, 1, 1, 2, tzinfo=timezone(timedelta(hours=2)))
    assert format_timestamp(shifted) == "2026-01-01T00:00:00.000000Z"
    assert parse_timestamp("2026-01-01T00:00:00Z") == datetime(2026, 1, 1, tzinfo=UTC)
