"""The Python model of the contracts: frozen dataclasses with canonical field names.

Field names, optionality and types mirror the JSON Schema files exactly; the
drift test in ``tests/unit/test_schema_contract.py`` fails if they diverge.
Construct them from already validated data (``fraudstream.validation`` does that
for bytes from Kafka); the dataclasses do not re-check the contract.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

Channel = Literal["pos", "ecom", "atm"]
LabelSource = Literal["chargeback", "analyst"]
SCHEMA_VERSION = 1


def format_timestamp(value: datetime) -> str:
    """RFC 3339 in UTC with a ``Z`` suffix and microseconds (``2026-01-31T23:59:59.123456Z``).

    A naive datetime is refused: it names no instant.
    """
    if value.tzinfo is None:
        raise ValueError(f"naive datetime {value!r}: event times must be timezone-aware UTC")
    v = value.astimezone(UTC)  # strftime's %Y does not pad years before 1000 on every libc
    return (
        f"{v.year:04d}-{v.month:02d}-{v.day:02d}T"
        f"{v.hour:02d}:{v.minute:02d}:{v.second:02d}.{v.microsecond:06d}Z"
    )


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


def epoch_us(value: datetime) -> int:
    """Epoch microseconds of an aware datetime, exactly (the stream's clock columns)."""
    if value.tzinfo is None:
        raise ValueError(f"naive datetime {value!r}: event times must be timezone-aware UTC")
    return (value - _EPOCH) // _MICROSECOND


def from_epoch_us(us: int) -> datetime:
    """The aware UTC datetime of epoch microseconds, exactly."""
    return _EPOCH + timedelta(microseconds=int(us))


def _present(record: Any) -> dict[str, Any]:
    """A flat contract dataclass's fields that are not None, by name (``asdict`` without
    its recursive deep copy, which cost the stream a third of its card-stage time)."""
    values = {}
    for field in fields(record):
        value = getattr(record, field.name)
        if value is not None:
            values[field.name] = value
    return values


def parse_timestamp(text: str) -> datetime:
    """An RFC 3339 UTC timestamp (``Z`` or ``+00:00``) as an aware UTC datetime."""
    value = datetime.fromisoformat(text)
    if value.tzinfo is None or value.utcoffset() != UTC.utcoffset(None):
        raise ValueError(f"{text!r} is not in UTC (use a Z or +00:00 suffix)")
    return value.astimezone(UTC)


@dataclass(frozen=True, slots=True)
class Transaction:
    """One card transaction; ``event_time`` is when it happened (aware UTC)."""

    transaction_id: str
    event_time: datetime
    card_id: str
    merchant_id: str
    amount: float
    currency: str
    customer_id: str | None = None
    merchant_category: str | None = None
    channel: Channel | None = None
    country: str | None = None
    lat: float | None = None
    lon: float | None = None
    device_id: str | None = None
    ip: str | None = None
    schema_version: int | None = None

    @classmethod
    def from_json_dict(cls, data: dict[str, Any]) -> Transaction:
        """From a decoded message that passed validation (timestamps still strings)."""
        values = dict(data)
        values["event_time"] = parse_timestamp(values["event_time"])
        for name in ("amount", "lat", "lon"):
            if values.get(name) is not None:
                values[name] = float(values[name])
        return cls(**values)

    def to_json_dict(self) -> dict[str, Any]:
        """The wire form: timestamps as RFC 3339 strings, absent optionals left out."""
        values = _present(self)
        values["event_time"] = format_timestamp(self.event_time)
        return values


@dataclass(frozen=True, slots=True)
class Label:
    """A fraud verdict on one transaction, known from ``label_time`` (aware UTC) on."""

    transaction_id: str
    is_fraud: bool
    label_time: datetime
    source: LabelSource
    fraud_scenario: str | None = None
    merchant_id: str | None = None
    """The labelled transaction's merchant, when the producer knows it."""
    event_time: datetime | None = None
    """The labelled transaction's event time, when the producer knows it."""

    @property
    def keys(self) -> tuple[str, datetime] | None:
        """The labelled transaction's merchant and event time when the label names both (the
        scorer can then apply it without a link from the transaction: ``scoring.merchants``),
        else None: a label with one of the two counts as one without keys."""
        if self.merchant_id is None or self.event_time is None:
            return None
        return self.merchant_id, self.event_time

    @property
    def keyed(self) -> bool:
        """Whether the label names both of its transaction's keys (``keys``)."""
        return self.keys is not None

    @classmethod
    def from_json_dict(cls, data: dict[str, Any]) -> Label:
        values = dict(data)
        values["label_time"] = parse_timestamp(values["label_time"])
        if values.get("event_time") is not None:
            values["event_time"] = parse_timestamp(values["event_time"])
        return cls(**values)

    def to_json_dict(self) -> dict[str, Any]:
        values = _present(self)
        values["label_time"] = format_timestamp(self.label_time)
        if self.event_time is not None:
            values["event_time"] = format_timestamp(self.event_time)
        return values
