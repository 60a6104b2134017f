"""The entry validator: every payload is accepted or dead-lettered with a reason, never a crash."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fraudstream.schema import Transaction, field_names
from fraudstream.validation import (
    DEAD_LETTER_PAYLOAD_LIMIT,
    Reason,
    Rejection,
    SourcePosition,
    TransactionValidator,
    ValidationPolicy,
    dead_letter,
)

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
VALIDATOR = TransactionValidator()
VALID: dict[str, Any] = {
    "transaction_id": "tx-1",
    "event_time": "2026-06-01T11:59:00.123456Z",
    "card_id": "card-1",
    "merchant_id": "merch-1",
    "amount": 12.34,
    "currency": "EUR",
    "customer_id": "cust-1",
    "merchant_category": "5411",
    "channel": "pos",
    "country": "DE",
    "lat": 52.5,
    "lon": 13.4,
    "schema_version": 1,
}


def _check(record: dict[str, Any] | bytes) -> Transaction | Rejection:
    payload = record if isinstance(record, bytes) else json.dumps(record).encode()
    return VALIDATOR.validate(payload, NOW)


def test_a_valid_transaction_is_accepted_with_its_values() -> None:
    result = _check(VALID)
    assert isinstance(result, Transaction)
    assert result.event_time == datetime(2026, 6, 1, 11, 59, 0, 123456, tzinfo=UTC)
    assert result.amount == 12.34
    assert result.to_json_dict() == VALID


@pytest.mark.parametrize("amount", [0, 0.0, -0.0])
def test_a_zero_amount_is_a_valid_authorisation(amount: float) -> None:
    """Account verification and card-on-file set-ups are sent as 0.00 (docs/data.md)."""
    result = _check({**VALID, "amount": amount})
    assert isinstance(result, Transaction)
    assert result.amount == 0


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"amount": -0.01}, Reason.AMOUNT_NEGATIVE),
        ({"amount": -5.5}, Reason.AMOUNT_NEGATIVE),
        ({"amount": 1e9}, Reason.AMOUNT_ABSURD),
        ({"amount": 10.005}, Reason.AMOUNT_PRECISION),
        ({"amount": "12.34"}, Reason.SCHEMA_VIOLATION),
        ({"amount": True}, Reason.SCHEMA_VIOLATION),
        ({"currency": "XYZ"}, Reason.UNKNOWN_CURRENCY),
        ({"currency": "eur"}, Reason.UNKNOWN_CURRENCY),
        ({"event_time": "2026-06-01 11:59:00"}, Reason.EVENT_TIME_INVALID),
        ({"event_time": "2026-06-01T13:59:00+02:00"}, Reason.EVENT_TIME_INVALID),
        ({"event_time": "2026-02-30T00:00:00Z"}, Reason.EVENT_TIME_INVALID),
        ({"event_time": "2026-06-01T12:06:00Z"}, Reason.EVENT_TIME_IN_FUTURE),
        ({"channel": "phone"}, Reason.SCHEMA_VIOLATION),
        ({"merchant_category": "54111"}, Reason.SCHEMA_VIOLATION),
        ({"country": "Germany"}, Reason.SCHEMA_VIOLATION),
        ({"lat": 91.0}, Reason.SCHEMA_VIOLATION),
        ({"ip": "300.1.1.1"}, Reason.SCHEMA_VIOLATION),
        ({"is_fraud": True}, Reason.SCHEMA_VIOLATION),
        ({"schema_version": 2}, Reason.SCHEMA_VIOLATION),
        ({"card_id": ""}, Reason.SCHEMA_VIOLATION),
    ],
)
def test_each_contract_breach_has_its_reason(change: dict[str, Any], reason: Reason) -> None:
    result = _check({**VALID, **change})
    assert isinstance(result, Rejection)
    assert result.reason is reason
    assert next(iter(change)) in result.message


def test_a_missing_required_field_is_named() -> None:
    record = {k: v for k, v in VALID.items() if k != "card_id"}
    result = _check(record)
    assert isinstance(result, Rejection)
    assert result.reason is Reason.MISSING_FIELD
    assert "card_id" in result.message


def test_optional_fields_may_be_absent_or_null_and_ip6_is_accepted() -> None:
    required = {k: VALID[k] for k in list(field_names("transaction"))[:6]}
    assert isinstance(_check(required), Transaction)
    assert isinstance(_check({**required, "lat": None, "ip": "2001:db8::1"}), Transaction)
    assert isinstance(_check({**required, "amount": 0.07}), Transaction)


@pytest.mark.parametrize(
    "payload",
    [b"", b"\xff\xfe", b"not json", b"[]", b"42", b'"x"', b"{", b'{"amount": NaN}', b"[" * 5000],
)
def test_unparseable_bytes_are_rejected(payload: bytes) -> None:
    result = _check(payload)
    assert isinstance(result, Rejection)
    assert result.reason is Reason.UNPARSEABLE


def test_oversized_messages_are_rejected_before_parsing() -> None:
    validator = TransactionValidator(ValidationPolicy(max_bytes=100))
    result = validator.validate(json.dumps(VALID).encode(), NOW)
    assert isinstance(result, Rejection)
    assert result.reason is Reason.OVERSIZED


def test_absurd_amounts_depend_on_the_currency() -> None:
    assert isinstance(_check({**VALID, "amount": 999_999.99}), Transaction)
    assert isinstance(_check({**VALID, "amount": 1_500_000, "currency": "NGN"}), Transaction)
    for amount, currency in ((1_000_000.01, "EUR"), (2e9, "VND"), (2e12, "JPY")):
        result = _check({**VALID, "amount": amount, "currency": currency})
        assert isinstance(result, Rejection)
        assert result.reason is Reason.AMOUNT_ABSURD
    strict = TransactionValidator(ValidationPolicy(max_amount=100))
    result = strict.validate(json.dumps({**VALID, "amount": 100.01}).encode(), NOW)
    assert isinstance(result, Rejection)
    assert result.reason is Reason.AMOUNT_ABSURD


def test_future_tolerance_is_a_policy() -> None:
    late = {**VALID, "event_time": "2026-06-01T13:00:00Z"}
    lenient = TransactionValidator(ValidationPolicy(max_future_skew=timedelta(hours=2)))
    assert isinstance(lenient.validate(json.dumps(late).encode(), NOW), Transaction)


def test_dead_letters_keep_the_original_bytes_and_the_source() -> None:
    raw = b"\x00\xffgarbage"
    rejection = _check(raw)
    assert isinstance(rejection, Rejection)
    source = SourcePosition("transactions", 3, 1234, b"card-1")
    letter = json.loads(dead_letter(rejection, raw, source, NOW))
    assert letter["reason"] == "unparseable"
    assert letter["payload_encoding"] == "base64"
    assert base64.b64decode(letter["payload"]) == raw
    assert letter["key"] == "card-1"
    assert (letter["source_topic"], letter["source_partition"], letter["source_offset"]) == (
        "transactions",
        3,
        1234,
    )
    assert letter["rejected_at"] == "2026-06-01T12:00:00.000000Z"
    assert source.dead_letter_key == b"transactions/3/1234"


def test_huge_payloads_are_cut_in_the_dead_letter_and_flagged() -> None:
    raw = b"x" * (DEAD_LETTER_PAYLOAD_LIMIT + 10)
    rejection = TransactionValidator().validate(raw, NOW)
    assert isinstance(rejection, Rejection)
    letter = json.loads(dead_letter(rejection, raw, SourcePosition("t", 0, 0), NOW))
    assert letter["reason"] == "oversized"
    assert letter["payload_truncated"] is True
    assert letter["payload_bytes"] == len(raw)
    assert len(letter["payload"]) == DEAD_LETTER_PAYLOAD_LIMIT


def _assert_decided(payload: bytes) -> None:
    """Accepted and re-encodable, or rejected with a reason and a dead letter that encodes."""
    result = VALIDATOR.validate(payload, NOW)
    if isinstance(result, Transaction):
        again = VALIDATOR.validate(json.dumps(result.to_json_dict()).encode(), NOW)
        assert again == result
        return
    assert isinstance(result, Rejection)
    assert isinstance(result.reason, Reason)
    assert result.message
    letter = json.loads(dead_letter(result, payload, SourcePosition("t", 0, 7), NOW))
    assert letter["reason"] == result.reason.value


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=2048))
def test_arbitrary_bytes_are_decided(payload: bytes) -> None:
    _assert_decided(payload)


_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(), children),
    max_leaves=8,
)


@settings(max_examples=600, deadline=None)
@given(
    st.dictionaries(st.sampled_from(sorted(VALID)), _json_values, max_size=4),
    st.lists(st.sampled_from(sorted(VALID)), max_size=2),
    st.sampled_from(["", "extra"]),
)
def test_near_valid_records_are_decided(
    changes: dict[str, Any], removed: list[str], extra: str
) -> None:
    record = {k: v for k, v in {**VALID, **changes}.items() if k not in removed}
    if extra:
        record[extra] = 1
    _assert_decided(json.dumps(record).encode())


@settings(max_examples=300, deadline=None)
@given(
    amount=st.floats(min_value=-1e7, max_value=1e7) | st.integers(-(10**20), 10**20),
    currency=st.text(min_size=0, max_size=4),
    event_time=st.datetimes(timezones=st.just(UTC)).map(lambda d: d.isoformat()),
)
def test_near_valid_values_are_decided(amount: float, currency: str, event_time: str) -> None:
    record = {**VALID, "amount": amount, "currency": currency, "event_time": event_time}
    result = VALIDATOR.validate(json.dumps(record).encode(), NOW)
    if isinstance(result, Transaction):
        assert 0 < result.amount <= VALIDATOR.policy.amount_limit(result.currency)
        assert round(result.amount, 2) == result.amount
        assert result.event_time <= NOW + timedelta(minutes=5)
    else:
        assert isinstance(result.reason, Reason)
    _assert_decided(json.dumps(record).encode())
