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
        (_encode(merchant_id="m-1"), Reason.SCHEMA_VIOLATION),  # a key without the other
        (_encode(event_time="2026-06-01T10:00:00Z"), Reason.SCHEMA_VIOLATION),
        (_encode(merchant_id="m-1", event_time="2026-06-01T11:30:00Z"), Reason.LABEL_TIME_INVALID),
        (_encode(merchant_id="m-1", event_time="2026-06-31T10:00:00Z"), Reason.EVENT_TIME_INVALID),
        (_encode(merchant_id="", event_time="2026-06-01T10:00:00Z"), Reason.SCHEMA_VIOLATION),
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


def test_a_keyed_label_carries_its_transactions_merchant_and_event_time() -> None:
    result = VALIDATOR.validate(
        _encode(merchant_id="m-1", event_time="2026-06-01T10:00:00.25Z"), NOW
    )
    assert isinstance(result, Label)
    assert result.keyed
    assert result.merchant_id == "m-1"
    assert result.event_time == datetime(2026, 6, 1, 10, 0, 0, 250_000, tzinfo=UTC)
    assert Label.from_json_dict(result.to_json_dict()) == result
    unkeyed = VALIDATOR.validate(_encode(merchant_id=None, event_time=None), NOW)
    assert isinstance(unkeyed, Label)
    assert not unkeyed.keyed
