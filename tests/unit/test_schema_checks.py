"""The compiled fast checks accept exactly what the JSON Schema accepts."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fraudstream.schema import json_schema
from fraudstream.schema.checks import UnsupportedSchemaError, compile_checker, within_decimals
from fraudstream.validation import ContractValidator
from tests.unit.test_validation import VALID as VALID_POS

SCHEMA = json_schema("transaction")
FAST = compile_checker(SCHEMA)
FULL = ContractValidator(SCHEMA, format_checker=ContractValidator.FORMAT_CHECKER)
LABEL_FAST = compile_checker(json_schema("label"))
LABEL_FULL = ContractValidator(json_schema("label"))
VALID: dict[str, Any] = {**VALID_POS, "channel": "ecom", "ip": "10.0.0.1", "lat": None}
_values = (
    st.none()
    | st.booleans()
    | st.integers(-(10**13), 10**13)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.decimals(-1000, 1e7, places=3, allow_nan=False).map(float)
    | st.text(max_size=70)
    | st.sampled_from(["EUR", "pos", "atm", "DE", "5411", "::1", "fe80::1%eth0", "1.2.3.04"])
    | st.sampled_from(["2026-01-01T00:00:00Z", "2026-01-01T00:00:00+01:00", "0.07", ""])
    | st.lists(st.integers(), max_size=2)
)


@settings(max_examples=1500, deadline=None)
@given(
    st.dictionaries(st.sampled_from([*sorted(SCHEMA["properties"]), "other"]), _values, max_size=5),
    st.lists(st.sampled_from(sorted(VALID)), max_size=2),
)
def test_fast_checks_agree_with_the_json_schema(changes: dict[str, Any], drop: list[str]) -> None:
    record = {k: v for k, v in {**VALID, **changes}.items() if k not in drop}
    assert FAST(record) == FULL.is_valid(record), record


@settings(max_examples=300, deadline=None)
@given(
    st.fixed_dictionaries(
        {"transaction_id": st.text(max_size=3), "is_fraud": _values, "label_time": _values},
        optional={"source": _values, "fraud_scenario": _values},
    )
)
def test_fast_checks_agree_on_labels(record: dict[str, Any]) -> None:
    assert LABEL_FAST(record) == LABEL_FULL.is_valid(record), record


@pytest.mark.parametrize(
    ("value", "ok"),
    [(0.07, True), (19.99, True), (12, True), (1.005, False), (0.1 + 0.2, False), (1e-7, False)],
)
def test_decimal_places(value: float, ok: bool) -> None:
    assert within_decimals(value, 2) is ok


def test_a_schema_with_an_unknown_keyword_is_refused() -> None:
    schema = {**SCHEMA, "properties": {**SCHEMA["properties"], "x": {"multipleOf": 3}}}
    with pytest.raises(UnsupportedSchemaError, match="multipleOf"):
        compile_checker(schema)
