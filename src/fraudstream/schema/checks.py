"""Fast checks compiled from a contract's JSON Schema, for the hot path of the stream entry.

General JSON Schema validation costs ~0.2 ms per record, too slow for a stream
of tens of thousands of records per second. ``compile_checker`` turns the
contract's schema into plain predicates (type, length, pattern, enum, bounds,
decimal places, IP formats, required and unknown fields), an order of magnitude
faster. It accepts exactly what the JSON Schema accepts (a property test
compares them); it says only yes or no, so the caller asks the full validator
for the reason when it says no. A schema using a keyword it does not know is
refused at compile time rather than checked loosely.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from typing import Any, TypeGuard

from fraudstream.schema.contract import DECIMALS_KEYWORD

Check = Callable[[object], bool]
_ANNOTATIONS = {"description", "title", "$comment", "x-fraudstream-type"}


class UnsupportedSchemaError(ValueError):
    """The schema uses a keyword the fast checks do not implement."""


def within_decimals(value: int | float, places: int) -> bool:
    """Whether ``value`` has at most ``places`` decimals: 0.07 has 2; 1.005 and 0.1 + 0.2 have more.

    A float qualifies when rounding it to ``places`` decimals gives the same float,
    i.e. the number written in the JSON had no more decimals.
    """
    return isinstance(value, int) or round(value, places) == value


def _is_number(v: object) -> TypeGuard[int | float]:
    return isinstance(v, int | float) and not isinstance(v, bool)


_TYPES: dict[str, Check] = {
    "string": lambda v: isinstance(v, str),
    "number": _is_number,
    "integer": lambda v: _is_number(v) and (isinstance(v, int) or v.is_integer()),
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
}


def _ipv4(v: object) -> bool:
    if not isinstance(v, str):
        return True
    try:
        ipaddress.IPv4Address(v)
    except ValueError:
        return False
    return True


def _ipv6(v: object) -> bool:
    if not isinstance(v, str):
        return True
    try:
        address = ipaddress.IPv6Address(v)
    except ValueError:
        return False
    return not address.scope_id


def _keyword(key: str, arg: Any) -> Check:
    """One keyword's predicate; like JSON Schema, it passes values it does not apply to."""
    n = _is_number
    if key == "type":
        return _any_of([_TYPES[t] for t in (arg if isinstance(arg, list) else [arg])])
    if key == "enum":
        allowed = frozenset(arg)
        return lambda v: (v is None or isinstance(v, str)) and v in allowed
    simple: dict[str, Check] = {
        "minLength": lambda v: not isinstance(v, str) or len(v) >= arg,
        "maxLength": lambda v: not isinstance(v, str) or len(v) <= arg,
        "minimum": lambda v: not n(v) or v >= arg,
        "maximum": lambda v: not n(v) or v <= arg,
        "exclusiveMinimum": lambda v: not n(v) or v > arg,
        DECIMALS_KEYWORD: lambda v: not n(v) or within_decimals(v, arg),
    }
    if key in simple:
        return simple[key]
    if key == "pattern":
        search = re.compile(arg).search
        return lambda v: not isinstance(v, str) or search(v) is not None
    if key == "format" and arg in ("ipv4", "ipv6"):
        return _ipv4 if arg == "ipv4" else _ipv6
    if key == "anyOf":
        return _any_of([compile_property(sub) for sub in arg])
    raise UnsupportedSchemaError(f"keyword {key!r} ({arg!r})")


def _any_of(options: list[Check]) -> Check:
    if len(options) == 1:
        return options[0]

    def check(v: object) -> bool:
        for option in options:  # noqa: SIM110 (a plain loop is faster than any() here)
            if option(v):
                return True
        return False

    return check


def compile_property(schema: dict[str, Any]) -> Check:
    """All keywords of one property's schema, conjoined (plain loops: this is the hot path)."""
    checks = [_keyword(k, a) for k, a in schema.items() if k not in _ANNOTATIONS]

    def check(v: object) -> bool:
        for c in checks:  # noqa: SIM110 (a plain loop is faster than all() here)
            if not c(v):
                return False
        return True

    return check


def compile_checker(schema: dict[str, Any]) -> Callable[[dict[str, Any]], bool]:
    """A predicate on a decoded JSON object: True exactly when the schema accepts it."""
    known = {"$schema", "$id", "title", "description", "type", "properties", "required"}
    extra = set(schema) - known - {"additionalProperties"}
    if extra or schema.get("type") != "object" or schema.get("additionalProperties") is not False:
        raise UnsupportedSchemaError(f"top level must be a closed object (extra: {extra})")
    props = {name: compile_property(sub) for name, sub in schema["properties"].items()}
    required = tuple(schema["required"])

    def check(doc: dict[str, Any]) -> bool:
        if any(r not in doc for r in required):
            return False
        for key, value in doc.items():
            prop = props.get(key)
            if prop is None or not prop(value):
                return False
        return True

    return check
