"""Validation at the stream's entry: bytes in, a Transaction or a dead letter out.

Pure (no Kafka client): the scorer and ``fraudstream validate`` call
``TransactionValidator.validate`` on every message value and publish each
rejection with ``dead_letter`` to the ``dead_letters`` topic. Nothing raises
for bad input: every payload is either accepted or rejected with a reason.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from functools import cached_property
from typing import Any, ClassVar, Generic, TypeVar

from jsonschema import Draft202012Validator, ValidationError, validators
from jsonschema.protocols import Validator

from fraudstream.schema import (
    Label,
    Transaction,
    format_timestamp,
    json_schema,
    parse_timestamp,
)
from fraudstream.schema.checks import compile_checker, within_decimals
from fraudstream.schema.contract import DECIMALS_KEYWORD, ContractName

Parsed = TypeVar("Parsed", Transaction, Label)


class Reason(StrEnum):
    """Machine-readable reason codes of a dead letter (stable: dashboards count them)."""

    OVERSIZED = "oversized"
    UNPARSEABLE = "unparseable"
    MISSING_FIELD = "missing_field"
    SCHEMA_VIOLATION = "schema_violation"
    AMOUNT_NEGATIVE = "amount_negative"
    AMOUNT_ABSURD = "amount_absurd"
    AMOUNT_PRECISION = "amount_precision"
    UNKNOWN_CURRENCY = "unknown_currency"
    EVENT_TIME_INVALID = "event_time_invalid"
    EVENT_TIME_IN_FUTURE = "event_time_in_future"
    LABEL_TIME_INVALID = "label_time_invalid"
    LABEL_TIME_IN_FUTURE = "label_time_in_future"


@dataclass(frozen=True)
class Rejection:
    """Why a payload was refused: a reason code and a message naming the field."""

    reason: Reason
    message: str


#: Currencies whose unit is worth less than about a hundredth of a euro or dollar;
#: a million of them is an ordinary purchase, so they get a higher absurd-amount limit.
HIGH_DENOMINATION = frozenset(
    [
        "AMD",
        "BIF",
        "CDF",
        "CLP",
        "COP",
        "GNF",
        "HUF",
        "IDR",
        "IQD",
        "IRR",
        "JPY",
        "KHR",
        "KMF",
        "KPW",
        "KRW",
        "KZT",
        "LAK",
        "LBP",
        "LKR",
        "MGA",
        "MMK",
        "MNT",
        "MWK",
        "NGN",
        "PKR",
        "PYG",
        "RWF",
        "SOS",
        "SSP",
        "SYP",
        "TZS",
        "UGX",
        "UZS",
        "VND",
        "XAF",
        "XOF",
        "YER",
    ]
)


@dataclass(frozen=True)
class ValidationPolicy:
    """Limits beyond the contract.

    ``max_bytes``: larger messages are refused before parsing (canonical
    transactions are ~0.5 KB). ``max_future_skew``: how far an event time may
    lie ahead of the validating clock (producers' clocks drift a little).
    ``max_amount``: amounts above it (in units of the transaction's currency)
    are absurd; ``high_denomination_max_amount`` applies instead to the
    currencies in ``high_denomination``.
    """

    max_bytes: int = 64 * 1024
    max_future_skew: timedelta = timedelta(minutes=5)
    max_amount: float = 1_000_000.0
    high_denomination_max_amount: float = 1_000_000_000.0
    high_denomination: frozenset[str] = HIGH_DENOMINATION

    def amount_limit(self, currency: str) -> float:
        if currency in self.high_denomination:
            return self.high_denomination_max_amount
        return self.max_amount


def _max_decimal_places(
    validator: Validator, places: int, instance: object, schema: dict[str, Any]
) -> Any:
    """The contract's extension keyword: a number with at most ``places`` decimals."""
    if isinstance(instance, bool) or not isinstance(instance, int | float):
        return
    if not within_decimals(instance, places):
        yield ValidationError(f"{instance!r} has more than {places} decimal places")


ContractValidator = validators.extend(  # type: ignore[no-untyped-call]
    Draft202012Validator, {DECIMALS_KEYWORD: _max_decimal_places}
)

# jsonschema keyword failing on a field -> reason code; anything else is a schema violation.
_FIELD_REASONS: dict[tuple[str, str], Reason] = {
    ("amount", "minimum"): Reason.AMOUNT_NEGATIVE,
    ("amount", "maximum"): Reason.AMOUNT_ABSURD,
    ("amount", DECIMALS_KEYWORD): Reason.AMOUNT_PRECISION,
    ("currency", "enum"): Reason.UNKNOWN_CURRENCY,
    ("event_time", "pattern"): Reason.EVENT_TIME_INVALID,
    ("label_time", "pattern"): Reason.LABEL_TIME_INVALID,
}
_PRIORITY = [
    Reason.MISSING_FIELD,
    Reason.EVENT_TIME_INVALID,
    Reason.LABEL_TIME_INVALID,
    Reason.AMOUNT_NEGATIVE,
    Reason.AMOUNT_ABSURD,
    Reason.AMOUNT_PRECISION,
    Reason.UNKNOWN_CURRENCY,
    Reason.SCHEMA_VIOLATION,
]


def _reject_constant(name: str) -> float:
    raise ValueError(f"{name} is not valid JSON")


def _describe(error: ValidationError) -> tuple[Reason, str]:
    path = ".".join(str(p) for p in error.absolute_path)
    if error.validator == "required":
        return Reason.MISSING_FIELD, str(error.message)
    reason = _FIELD_REASONS.get((path, str(error.validator)), Reason.SCHEMA_VIOLATION)
    message = str(error.message)
    if len(message) > 200:
        message = message[:200] + "..."
    return reason, f"{path or 'message'}: {message}"


def _decode(payload: bytes | None) -> dict[str, Any] | Rejection:
    """A message value as a JSON object, or why it is not one."""
    if not payload:
        return Rejection(Reason.UNPARSEABLE, "empty message")
    try:
        value = json.loads(payload.decode("utf-8"), parse_constant=_reject_constant)
    except UnicodeDecodeError as exc:
        return Rejection(Reason.UNPARSEABLE, f"not UTF-8: {exc.reason} at byte {exc.start}")
    except (ValueError, RecursionError) as exc:
        return Rejection(Reason.UNPARSEABLE, f"not JSON: {str(exc)[:200]}")
    if not isinstance(value, dict):
        return Rejection(Reason.UNPARSEABLE, f"not a JSON object but {type(value).__name__}")
    try:  # escapes can smuggle in lone surrogates, which no UTF-8 consumer can store
        for item in value.values():
            if isinstance(item, str):
                item.encode("utf-8")
    except UnicodeEncodeError:
        return Rejection(Reason.UNPARSEABLE, "a string holds an unpaired UTF-16 surrogate")
    return value


@dataclass(frozen=True)
class _Contract:
    """The checks every contract shares: size, JSON object, schema. Thread-safe."""

    name: ContractName

    @cached_property
    def _accepts(self) -> Callable[[dict[str, Any]], bool]:
        return compile_checker(json_schema(self.name))

    @cached_property
    def _schema(self) -> Validator:
        checker = Draft202012Validator.FORMAT_CHECKER
        validator: Validator = ContractValidator(json_schema(self.name), format_checker=checker)
        return validator

    def admit(self, payload: bytes | None, max_bytes: int) -> dict[str, Any] | Rejection:
        """The decoded object when it fits ``max_bytes`` and the schema, else the first reason."""
        size = len(payload or b"")
        if size > max_bytes:
            return Rejection(Reason.OVERSIZED, f"message is {size} bytes; the limit is {max_bytes}")
        decoded = _decode(payload)
        if isinstance(decoded, Rejection):
            return decoded
        if not self._accepts(decoded):  # the fast checks; the full validator says why
            errors = [_describe(e) for e in self._schema.iter_errors(decoded)]
            errors.sort(key=lambda e: _PRIORITY.index(e[0]))
            if errors:
                return Rejection(*errors[0])
        return decoded


# timestamp field -> (reason when it is not a real time, reason when it lies in the future)
_TIME_REASONS = {
    "event_time": (Reason.EVENT_TIME_INVALID, Reason.EVENT_TIME_IN_FUTURE),
    "label_time": (Reason.LABEL_TIME_INVALID, Reason.LABEL_TIME_IN_FUTURE),
}


def _check_time(
    data: dict[str, Any], name: str, now: datetime, skew: timedelta
) -> Rejection | None:
    """Why the timestamp ``data[name]`` is refused (not a real time, or more than
    ``skew`` ahead of ``now``), or None when it is fine."""
    invalid, in_future = _TIME_REASONS[name]
    try:
        moment = parse_timestamp(data[name])
    except ValueError as exc:
        return Rejection(invalid, f"{name}: {exc}")
    if moment > now + skew:
        return Rejection(
            in_future,
            f"{name} {data[name]} is {moment - now} ahead of the clock (tolerance {skew})",
        )
    return None


@dataclass(frozen=True)
class _RecordValidator(Generic[Parsed]):
    """Contract checks, then the record kind's policy checks. Thread-safe."""

    contract: ClassVar[_Contract]
    policy: ValidationPolicy = field(default_factory=ValidationPolicy)

    def validate(self, payload: bytes | None, now: datetime) -> Parsed | Rejection:
        """Decide one message value; ``now`` (aware UTC) bounds its timestamp from above.

        Never raises for bad input. A valid result is the parsed record.
        """
        decoded = self.contract.admit(payload, self.policy.max_bytes)
        if isinstance(decoded, Rejection):
            return decoded
        return self._check_policy(decoded, now)

    def _check_policy(self, data: dict[str, Any], now: datetime) -> Parsed | Rejection:
        raise NotImplementedError


@dataclass(frozen=True)
class TransactionValidator(_RecordValidator[Transaction]):
    """Checks message values against the transaction contract and the policy. Thread-safe."""

    contract: ClassVar[_Contract] = _Contract("transaction")

    def _check_policy(self, data: dict[str, Any], now: datetime) -> Transaction | Rejection:
        limit = self.policy.amount_limit(data["currency"])
        if data["amount"] > limit:
            return Rejection(
                Reason.AMOUNT_ABSURD,
                f"amount: {data['amount']!r} {data['currency']} is above the limit of {limit:,.0f}",
            )
        late = _check_time(data, "event_time", now, self.policy.max_future_skew)
        return late or Transaction.from_json_dict(data)


@dataclass(frozen=True)
class LabelValidator(_RecordValidator[Label]):
    """Checks message values against the label contract. Thread-safe.

    Shares the transaction validator's size limit and future-skew tolerance:
    a label_time ahead of the validating clock is a producer error.
    """

    contract: ClassVar[_Contract] = _Contract("label")

    def _check_policy(self, data: dict[str, Any], now: datetime) -> Label | Rejection:
        late = _check_time(data, "label_time", now, self.policy.max_future_skew)
        if late:
            return late
        if (data.get("merchant_id") is None) != (data.get("event_time") is None):
            return Rejection(
                Reason.SCHEMA_VIOLATION,
                "merchant_id and event_time name the labelled transaction together: "
                "send both or neither",
            )
        if data.get("event_time") is not None:
            wrong = _check_time(data, "event_time", now, self.policy.max_future_skew)
            if wrong:
                return wrong
            if parse_timestamp(data["event_time"]) > parse_timestamp(data["label_time"]):
                return Rejection(
                    Reason.LABEL_TIME_INVALID,
                    f"label_time {data['label_time']} precedes the transaction's "
                    f"event_time {data['event_time']}",
                )
        return Label.from_json_dict(data)


@dataclass(frozen=True)
class SourcePosition:
    """Where a message was read: topic, partition, offset (and its key, if any)."""

    topic: str
    partition: int
    offset: int
    key: bytes | None = None

    @property
    def dead_letter_key(self) -> bytes:
        return f"{self.topic}/{self.partition}/{self.offset}".encode()


#: Original payloads larger than this are cut in the dead letter (flagged), so the
#: dead letter stays below Kafka's default 1 MB message limit even when base64-encoded.
DEAD_LETTER_PAYLOAD_LIMIT = 512 * 1024


def _payload_fields(payload: bytes | None, prefix: str) -> dict[str, Any]:
    """The bytes as text when they are UTF-8, else as base64, with how they are encoded."""
    if payload is None:
        return {prefix: None, f"{prefix}_encoding": "none"}
    kept = payload[:DEAD_LETTER_PAYLOAD_LIMIT]
    fields: dict[str, Any] = {f"{prefix}_bytes": len(payload)}
    if len(kept) < len(payload):
        fields[f"{prefix}_truncated"] = True
    try:
        fields[prefix] = kept.decode("utf-8")
        fields[f"{prefix}_encoding"] = "utf-8"
    except UnicodeDecodeError:
        fields[prefix] = base64.b64encode(kept).decode("ascii")
        fields[f"{prefix}_encoding"] = "base64"
    return fields


def dead_letter(
    rejection: Rejection, payload: bytes | None, source: SourcePosition, now: datetime
) -> bytes:
    """The dead-letter record (JSON, UTF-8) for a rejected payload.

    Fields: ``reason``, ``message``, ``payload`` with ``payload_encoding``
    (``utf-8`` or ``base64``) and ``payload_bytes``, the source ``key`` likewise,
    ``source_topic``/``source_partition``/``source_offset`` and ``rejected_at``
    (the validating clock, UTC). Publish it keyed by ``source.dead_letter_key``,
    so a re-validation of the same offset overwrites rather than adds in a
    compacted view.
    """
    record: dict[str, Any] = {
        "reason": rejection.reason.value,
        "message": rejection.message,
        **_payload_fields(payload, "payload"),
        **_payload_fields(source.key, "key"),
        "source_topic": source.topic,
        "source_partition": source.partition,
        "source_offset": source.offset,
        "rejected_at": format_timestamp(now.astimezone(UTC)),
    }
    return json.dumps(record, ensure_ascii=False).encode("utf-8")
