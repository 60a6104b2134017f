"""State codec: exact round trips (floats bit-exact), versioning, refusal of foreign bytes."""

from __future__ import annotations

import math
import struct
from dataclasses import fields
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fraudstream.features import codec
from fraudstream.features.card import CardState, update_card
from fraudstream.features.catalogue import DAY, FEATURE_SET_VERSION
from fraudstream.features.codec import (
    StateDecodeError,
    StateVersionError,
    decode_card,
    decode_merchant,
    encode_card,
    encode_merchant,
)
from fraudstream.features.events import LabelEvent, TxnEvent
from fraudstream.features.merchant import MerchantState, apply_label, update_merchant

T0 = 1_700_000_000.0


def bits(value: Any) -> Any:
    """Floats replaced by their IEEE-754 bit patterns, so NaN == NaN and -0.0 != 0.0."""
    if isinstance(value, float):
        return struct.unpack("<Q", struct.pack("<d", value))[0]
    if isinstance(value, list | tuple):
        return [bits(v) for v in value]
    if isinstance(value, dict):
        return [(k, bits(v)) for k, v in value.items()]  # insertion order included
    return value


def assert_identical(a: Any, b: Any) -> None:
    assert type(a) is type(b)
    for f in fields(a):
        assert bits(getattr(a, f.name)) == bits(getattr(b, f.name)), f.name


txns = st.lists(
    st.tuples(
        st.floats(0, 3 * DAY),  # gap to the previous transaction
        st.floats(0.01, 1e6, allow_subnormal=False),
        st.sampled_from(["m1", "m2", "m3", "caf\u00e9", ""]),
        st.one_of(st.none(), st.sampled_from(["grocery", "fuel", "travel"])),
        st.one_of(st.none(), st.tuples(st.floats(-90, 90), st.floats(-180, 180))),
    ),
    max_size=120,
)


def card_sequence(rows: list[tuple[Any, ...]]) -> list[TxnEvent]:
    t, out = T0, []
    for i, (gap, amount, merchant, category, point) in enumerate(rows):
        t += gap
        lat, lon = point if point else (None, None)
        out.append(TxnEvent(f"t{i}", t, "card", merchant, amount, category, lat, lon))
    return out


@settings(max_examples=60, deadline=None)
@given(txns, txns)
def test_card_round_trip_is_exact_and_continues_identically(
    before: list[tuple[Any, ...]], after: list[tuple[Any, ...]]
) -> None:
    sequence = card_sequence(before + after)
    state: CardState | None = None
    for txn in sequence[: len(before)]:
        state, _ = update_card(state, txn)
    state = state or CardState()
    copy = decode_card(encode_card(state))
    assert_identical(copy, state)
    assert encode_card(copy) == encode_card(state)
    for txn in sequence[len(before) :]:
        state, expected = update_card(state, txn)
        copy, got = update_card(copy, txn)
        assert bits(got) == bits(expected)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.floats(0, 2 * DAY), max_size=150),
    st.lists(st.tuples(st.integers(0, 149), st.booleans()), max_size=30),
)
def test_merchant_round_trip_is_exact(gaps: list[float], labels: list[tuple[int, bool]]) -> None:
    state: MerchantState | None = None
    t, times = T0, []
    for i, gap in enumerate(gaps):
        t += gap
        times.append(t)
        state, _ = update_merchant(state, TxnEvent(f"t{i}", t, f"c{i}", "m", 1.0))
    for index, is_fraud in labels:
        if index < len(times):
            label = LabelEvent(f"t{index}", "m", times[index], t, is_fraud)
            state = apply_label(state, label)
    state = state or MerchantState()
    copy = decode_merchant(encode_merchant(state))
    assert_identical(copy, state)


def test_special_floats_survive_bit_for_bit() -> None:
    payload_nan = struct.unpack("<d", struct.pack("<Q", 0x7FF8_0000_0000_1234))[0]
    state = CardState(
        times=[T0, T0 + 1.5],
        amounts=[-0.0, 5e-324],
        merchants=["m", "m"],
        categories=[None, "x"],
        located=(T0, payload_nan, math.inf),
        sums=[math.nan, -math.inf, 1e308, -0.0],
        sumsq=2.0**-1074,
        merchants_1h={"m": 2},
        merchants_24h={"m": 2},
        merchants_30d={"m": 2},
        categories_30d={"x": 1},
    )
    assert_identical(decode_card(encode_card(state)), state)


def test_blob_is_compact() -> None:
    state: CardState | None = None
    for i in range(100):
        state, _ = update_card(state, TxnEvent(f"t{i}", T0 + 60 * i, "c", f"m{i % 5}", 10.0, "g"))
    assert state is not None
    # 100 transactions: two doubles and two string refs each, plus a small string table.
    assert len(encode_card(state)) < 100 * 24 + 200


def test_another_feature_set_version_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    blob = encode_merchant(MerchantState(times=[T0], fraud_ids={}))
    monkeypatch.setattr(codec, "FEATURE_SET_VERSION", "999")
    with pytest.raises(StateVersionError, match=f"feature-set version '{FEATURE_SET_VERSION}'"):
        decode_merchant(blob)


def test_another_format_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    blob = encode_card(CardState())
    monkeypatch.setattr(codec, "FORMAT", codec.FORMAT + 1)
    with pytest.raises(StateVersionError, match="codec format"):
        decode_card(blob)


@pytest.mark.parametrize(
    "blob",
    [
        b"",
        b"not a state",
        encode_merchant(MerchantState()),  # a merchant is not a card
        encode_card(CardState(times=[T0], amounts=[1.0], merchants=["m"], categories=[None]))[:-3],
        encode_card(CardState()) + b"\x00",
        b"\x80\x04\x95pickle",
    ],
    ids=["empty", "garbage", "wrong-kind", "truncated", "trailing", "pickle"],
)
def test_foreign_or_damaged_bytes_are_refused(blob: bytes) -> None:
    with pytest.raises(StateDecodeError):
        decode_card(blob)


def test_many_distinct_strings_use_wider_references() -> None:
    state: CardState | None = None
    for i in range(300):  # 300 merchants: more than one-byte references can name
        state, _ = update_card(state, TxnEvent(f"t{i}", T0 + 60 * i, "c", f"m{i}", 1.0, None))
    assert state is not None
    assert_identical(decode_card(encode_card(state)), state)
