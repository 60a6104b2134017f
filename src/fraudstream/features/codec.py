"""Compact, versioned bytes for card and merchant states (online store, stream state).

The streaming scorer keeps one ``CardState`` per card and one ``MerchantState`` per
merchant; the online store and Spark's state store hold them as bytes. This module
is the one encoding for both, with three promises:

- **exact**: ``decode_card(encode_card(s)) == s`` field for field, floats bit-exact
  (IEEE-754 doubles are written as they are, NaN payloads included), dict keys and
  their insertion order kept, so a decoded state produces the very features the
  original would;
- **versioned**: every blob starts with a magic, the entity kind, the codec format
  and the ``FEATURE_SET_VERSION`` it was written under. Decoding a blob of another
  feature-set version raises ``StateVersionError`` instead of silently feeding a
  model features computed under other rules;
- **safe**: plain ``struct`` packing, no pickle; a truncated or foreign blob raises
  ``StateDecodeError`` rather than executing or half-decoding anything.

Layout (little-endian). Header: ``b"FS"``, kind (``b"C"``/``b"M"``), format (u8),
feature-set version (u8 length + UTF-8). Strings (merchant ids, categories, dict
keys) go once into a table (u32 count, the reference width as a struct code
``B``/``H``/``I``, then u16 length + UTF-8 each) and are referenced by index in the
narrowest width that fits (its all-ones value for None). Lists of floats are a u32 count
followed by that many doubles. Window starts carry their count (u8) so a state of
a different window layout is refused.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable

from fraudstream.features.card import CardState
from fraudstream.features.catalogue import FEATURE_SET_VERSION
from fraudstream.features.merchant import MerchantState

FORMAT = 1
"""Bump when the byte layout changes (independently of the feature-set version)."""

_MAGIC = b"FS"
_CARD, _MERCHANT = b"C", b"M"
_NONE = {"B": 0xFF, "H": 0xFFFF, "I": 0xFFFFFFFF}
_WIDTH = {"B": 1, "H": 2, "I": 4}
_U8, _U16, _U32, _F64 = struct.Struct("<B"), struct.Struct("<H"), struct.Struct("<I"), "d"


class StateDecodeError(ValueError):
    """The bytes are not a state blob of this codec (truncated, corrupt or another kind)."""


class StateVersionError(StateDecodeError):
    """The blob was written under another feature-set version or codec format.

    The caller decides what that means: the online store treats the entity as
    unknown (a new card), a scorer refuses to start on a mismatched state store.
    """


class _Writer:
    """Collects fields, interning strings; ``blob`` writes the table, then the fields.

    String references are kept as index lists until the table is complete, so they
    can be written in the narrowest width that fits (1, 2 or 4 bytes each).
    """

    def __init__(self) -> None:
        self.parts: list[bytes | list[int]] = []
        self.strings: dict[str, int] = {}

    def ref(self, value: str | None) -> int:
        if value is None:
            return -1
        index = self.strings.get(value)
        if index is None:
            index = self.strings[value] = len(self.strings)
        return index

    def refs(self, values: Iterable[str | None]) -> None:
        indices = [self.ref(v) for v in values]
        self.parts += (_U32.pack(len(indices)), indices)

    def floats(self, values: list[float]) -> None:
        self.parts.append(struct.pack(f"<I{len(values)}d", len(values), *values))

    def ints(self, values: list[int]) -> None:
        self.parts.append(struct.pack(f"<B{len(values)}I", len(values), *values))

    def counts(self, counts: dict[str, int]) -> None:
        self.parts += (
            _U32.pack(len(counts)),
            [self.ref(key) for key in counts],
            struct.pack(f"<{len(counts)}I", *counts.values()),
        )

    def blob(self, kind: bytes) -> bytes:
        version = FEATURE_SET_VERSION.encode()
        code = _width_code(len(self.strings))
        out = bytearray(_MAGIC + kind + _U8.pack(FORMAT) + _U8.pack(len(version)) + version)
        out += _U32.pack(len(self.strings)) + code.encode()
        for text in self.strings:
            raw = text.encode()
            out += _U16.pack(len(raw)) + raw
        none = _NONE[code]
        for part in self.parts:
            if isinstance(part, list):
                out += struct.pack(f"<{len(part)}{code}", *(none if i < 0 else i for i in part))
            else:
                out += part
        return bytes(out)


def _width_code(table_size: int) -> str:
    """The struct code of the narrowest unsigned int holding every index and the None marker."""
    return "B" if table_size < 0xFF else "H" if table_size < 0xFFFF else "I"


class _Reader:
    """Reads fields back in the order ``_Writer`` wrote them; any overrun is a decode error."""

    def __init__(self, blob: bytes, kind: bytes) -> None:
        self.view = memoryview(blob)
        self.pos = 0
        if bytes(self.view[:2]) != _MAGIC or bytes(self.view[2:3]) != kind:
            raise StateDecodeError(f"not a {_KINDS.get(kind, '?')} state blob")
        self.pos = 3
        fmt = self.unpack(_U8)
        version = bytes(self.take(self.unpack(_U8))).decode()
        if fmt != FORMAT or version != FEATURE_SET_VERSION:
            raise StateVersionError(
                f"state written with codec format {fmt}, feature-set version {version!r}; "
                f"this code reads format {FORMAT}, feature-set version {FEATURE_SET_VERSION!r}"
            )
        size = self.unpack(_U32)
        self.code = chr(self.unpack(_U8))
        if self.code not in _WIDTH:
            raise StateDecodeError("state blob has an unknown reference width")
        self.none = _NONE[self.code]
        self.strings = [bytes(self.take(self.unpack(_U16))).decode() for _ in range(size)]

    def take(self, size: int) -> memoryview:
        end = self.pos + size
        if end > len(self.view):
            raise StateDecodeError("state blob is truncated")
        chunk = self.view[self.pos : end]
        self.pos = end
        return chunk

    def unpack(self, fmt: struct.Struct) -> int:
        (value,) = fmt.unpack(self.take(fmt.size))
        return int(value)

    def str_at(self, index: int) -> str | None:
        if index == self.none:
            return None
        if index >= len(self.strings):
            raise StateDecodeError("state blob references a missing string")
        return self.strings[index]

    def indices(self, n: int) -> tuple[int, ...]:
        return struct.unpack(f"<{n}{self.code}", self.take(_WIDTH[self.code] * n))

    def refs(self) -> list[str | None]:
        return [self.str_at(i) for i in self.indices(self.unpack(_U32))]

    def floats(self) -> list[float]:
        n = self.unpack(_U32)
        return list(struct.unpack(f"<{n}d", self.take(8 * n)))

    def ints(self, expected: int) -> list[int]:
        n = self.unpack(_U8)
        if n != expected:
            raise StateVersionError(f"state has {n} windows, this code has {expected}")
        return list(struct.unpack(f"<{n}I", self.take(4 * n)))

    def counts(self) -> dict[str, int]:
        n = self.unpack(_U32)
        keys = [self.str_at(i) for i in self.indices(n)]
        values = struct.unpack(f"<{n}I", self.take(4 * n))
        if None in keys:
            raise StateDecodeError("state blob has a None dict key")
        return {str(k): v for k, v in zip(keys, values, strict=True)}

    def done(self) -> None:
        if self.pos != len(self.view):
            raise StateDecodeError(f"{len(self.view) - self.pos} trailing bytes after the state")


_KINDS = {_CARD: "card", _MERCHANT: "merchant"}


def encode_card(state: CardState) -> bytes:
    """The card state as bytes (see the module docstring for the layout)."""
    w = _Writer()
    w.floats(state.times)
    w.floats(state.amounts)
    w.refs(state.merchants)
    w.refs(state.categories)
    w.floats([] if state.located is None else list(state.located))
    w.ints(state.start)
    w.floats(state.sums)
    w.floats([state.sumsq])
    for counts in (
        state.merchants_1h,
        state.merchants_24h,
        state.merchants_30d,
        state.categories_30d,
    ):
        w.counts(counts)
    return w.blob(_CARD)


def decode_card(blob: bytes) -> CardState:
    """The card state back from ``encode_card``; raises StateVersionError/StateDecodeError."""
    try:
        r = _Reader(blob, _CARD)
        times, amounts = r.floats(), r.floats()
        merchants = r.refs()
        categories = r.refs()
        located = r.floats()
        start = r.ints(len(CardState().start))
        sums = r.floats()
        (sumsq,) = r.floats()
        m1h, m24h, m30d, c30d = r.counts(), r.counts(), r.counts(), r.counts()
    except (struct.error, UnicodeDecodeError, ValueError) as exc:
        if isinstance(exc, StateDecodeError):
            raise
        raise StateDecodeError(f"corrupt card state: {exc}") from exc
    r.done()
    if None in merchants or len({len(times), len(amounts), len(merchants), len(categories)}) != 1:
        raise StateDecodeError("corrupt card state: transaction columns differ in length")
    if len(located) not in (0, 3):
        raise StateDecodeError("corrupt card state: location is not (time, lat, lon)")
    return CardState(
        times=times,
        amounts=amounts,
        merchants=[m for m in merchants if m is not None],
        categories=categories,
        located=(located[0], located[1], located[2]) if located else None,
        start=start,
        sums=sums,
        sumsq=sumsq,
        merchants_1h=m1h,
        merchants_24h=m24h,
        merchants_30d=m30d,
        categories_30d=c30d,
    )


def encode_merchant(state: MerchantState) -> bytes:
    """The merchant state as bytes (see the module docstring for the layout)."""
    w = _Writer()
    w.floats(state.times)
    w.ints(state.start)
    w.floats(state.fraud_times)
    w.refs(state.fraud_ids.keys())
    w.floats(list(state.fraud_ids.values()))
    return w.blob(_MERCHANT)


def decode_merchant(blob: bytes) -> MerchantState:
    """The merchant state back from ``encode_merchant``; raises like ``decode_card``."""
    try:
        r = _Reader(blob, _MERCHANT)
        times = r.floats()
        start = r.ints(len(MerchantState().start))
        fraud_times = r.floats()
        ids = r.refs()
        id_times = r.floats()
    except (struct.error, UnicodeDecodeError, ValueError) as exc:
        if isinstance(exc, StateDecodeError):
            raise
        raise StateDecodeError(f"corrupt merchant state: {exc}") from exc
    r.done()
    if len(ids) != len(id_times) or None in ids:
        raise StateDecodeError("corrupt merchant state: fraud ids and times differ")
    return MerchantState(
        times=times,
        start=start,
        fraud_times=fraud_times,
        fraud_ids={str(k): t for k, t in zip(ids, id_times, strict=True)},
    )


__all__ = [
    "FORMAT",
    "StateDecodeError",
    "StateVersionError",
    "decode_card",
    "decode_merchant",
    "encode_card",
    "encode_merchant",
]
