"""The label validator: contract checks shared with transactions, label-time policy."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from fraudstream.schema import Label
from fraudstream.validation import LabelValidator, Reason, Rejection, ValidationPolicy

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
VALIDATOR = LabelValidator()
VALID: dict[str, Any] = {
    "transaction_id": "tx-1",
    "is_fraud": True,
    "fraud_scenario": "card_testing",
    "label_time": "2026-06-01T11:00:00Z",
    "source": "chargeback",
}


def _encode(**changes: Any) -> bytes:
    data = {**VALID, **changes}
    return json.dumps({k: v for k, v in data.items() if v is not ...}).encode()


def test_a_valid_label_is_parsed() -> None:
    result = VALIDATOR.validate(_encode(), NOW)
    assert result == Label(
        "tx-1", True, datetime(2026, 6, 1, 11, tzinfo=UTC), "chargeback", "card_testing"
    )


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"", Reason.UNPARSEABLE),
        (b"{not json", Reason.UNPARSEABLE),
        (b"[1, 2]", Reason.UNPARSEABLE),
        (_encode(source=...), Reason.MISSING_FIELD),
        (_encode(source="hunch"), Reason.SCHEMA_VIOLATION),
        (_encode(is_fraud="yes"), Reason.SCHEMA_VIOLATION),
        (_encode(extra=1), Reason.SCHEMA_VIOLATION),
        (_encode(label_time="2026-06-01 11:00"), Reason.LABEL_TIME_INVALID),
        (_encode(label_time="2026-02-30T11:00:00Z"), Reason.LABEL_TIME_INVALID),
        (_encode(label_time="2026-06-01T13:00:00Z"), Reason.LABEL_TIME_IN_FUTURE),
        (b" " * (64 * 1024 + 1), Reason.OVERSIZED),
    ],
)
def test_invalid_labels_are_rejected_with_their_reason(payload: bytes, reason: Reason) -> None:
    result = VALIDATOR.validate(payload, NOW)
    assert isinstance(result, Rejection)
    assert result.reason == reason, result.message


def test_label_time_within_the_skew_is_accepted() -> None:
    skewed = (NOW + timedelta(minutes=4)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert isinstance(VALIDATOR.validate(_encode(label_time=skewed), NOW), Label)
    strict = LabelValidator(ValidationPolicy(max_future_skew=timedelta(0)))
    assert isinstance(strict.validate(_encode(label_time=skewed), NOW), Rejection)
