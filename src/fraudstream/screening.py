"""The stream's row policy applied to a whole file, for every offline entry point.

The row rules live in one place: ``fraudstream.validation`` (the contract's JSON
Schema plus ``ValidationPolicy``). The scorer and ``fraudstream validate`` run
them on each Kafka record; ``screen`` runs the very same validator on the bytes
each row of a table would be on the wire (``schema.tables.wire_records``, what
``replay`` sends), so ``generate``, ``replay``, ``train``, ``evaluate``,
``score-file``, ``promote`` and ``extract-training-set`` keep or refuse exactly the
rows the stream scores or dead-letters. Pure: the caller passes the clock.

Rows that fail are never used silently: a ``Screened`` says how many were
excluded per reason code and names the first few; ``Screened.check(strict=True)``
turns any exclusion into a ``RowPolicyError`` instead.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from fraudstream.schema.contract import ContractName
from fraudstream.schema.tables import TableContractError, conform, wire_records
from fraudstream.validation import (
    LabelValidator,
    Rejection,
    TransactionValidator,
    ValidationPolicy,
)

if TYPE_CHECKING:
    import pandas as pd

#: How many ids of excluded rows a report names per reason.
EXAMPLES = 3
_ID_FIELD = "transaction_id"


class RowPolicyError(ValueError):
    """Rows refused by the row policy where the caller asked to be strict (``--strict``)."""


@dataclass(frozen=True)
class Screened:
    """What the row policy kept of a table.

    ``kept`` is one flag per input row, in input order. ``excluded`` counts the
    refused rows per reason code (the dead letters' codes); ``examples`` holds the
    first ``EXAMPLES`` transaction ids of each reason, in input order.
    """

    where: str
    kept: pa.BooleanArray
    excluded: dict[str, int] = field(default_factory=dict)
    examples: dict[str, list[str]] = field(default_factory=dict)

    @property
    def rows(self) -> int:
        return len(self.kept)

    @property
    def excluded_rows(self) -> int:
        return sum(self.excluded.values())

    def describe(self) -> str:
        """One line: how many rows were refused, per reason, with the first ids of each."""
        parts = [
            f"{reason} {count:,} (e.g. {', '.join(self.examples[reason])})"
            for reason, count in sorted(self.excluded.items())
        ]
        return (
            f"{self.where}: {self.excluded_rows:,} of {self.rows:,} rows fail the row policy: "
            + "; ".join(parts)
        )

    def check(self, strict: bool) -> Screened:
        """Itself, or with ``strict`` a ``RowPolicyError`` when any row was refused."""
        if strict and self.excluded_rows:
            raise RowPolicyError(
                f"{self.describe()}. Fix or remove these rows (docs/data.md lists the rules), "
                "or drop --strict to exclude them and go on"
            )
        return self

    def summary(self) -> dict[str, Any]:
        """Counts for reports, manifests and MLflow (flat: one key per reason)."""
        return {
            "rows_read": self.rows,
            "rows_excluded": self.excluded_rows,
            **{f"rows_excluded_{r}": n for r, n in sorted(self.excluded.items())},
        }


def _validator(name: ContractName, policy: ValidationPolicy) -> Callable[..., object]:
    if name == "transaction":
        return TransactionValidator(policy).validate
    return LabelValidator(policy).validate


def screen(
    table: pa.Table,
    name: ContractName,
    now: datetime,
    where: str = "input",
    policy: ValidationPolicy | None = None,
    on_rows: Callable[[int], None] | None = None,
) -> Screened:
    """Run the contract's validator on every row of a conformed ``table``.

    ``now`` (aware UTC) is the validating clock, as in the stream: an event time
    more than the policy's skew ahead of it is refused. ``on_rows(n)`` is called
    with the rows done so far, every few thousand rows.
    """
    validate = _validator(name, policy or ValidationPolicy())
    ids = table.column(_ID_FIELD).to_pylist()
    flags: list[bool] = []
    excluded: dict[str, int] = {}
    examples: dict[str, list[str]] = {}
    for i, (_, _, payload) in enumerate(wire_records(table, name)):
        result = validate(payload, now)
        flags.append(not isinstance(result, Rejection))
        if isinstance(result, Rejection):
            reason = result.reason.value
            excluded[reason] = excluded.get(reason, 0) + 1
            if len(named := examples.setdefault(reason, [])) < EXAMPLES:
                named.append(str(ids[i])[:64])
        if on_rows is not None and (i + 1) % 8192 == 0:
            on_rows(i + 1)
    if on_rows is not None:
        on_rows(len(flags))
    return Screened(where, pa.array(flags, type=pa.bool_()), excluded, examples)


def screen_frame(
    frame: pd.DataFrame,
    name: ContractName,
    now: datetime,
    where: str = "input",
    on_rows: Callable[[int], None] | None = None,
) -> tuple[pd.DataFrame, Screened]:
    """The rows of ``frame`` the row policy keeps (its own columns and dtypes), and the screen.

    The frame is first conformed to the contract like a replayed file
    (``TableContractError`` names a missing or ill-typed column).
    """
    try:
        table = pa.Table.from_pandas(frame, preserve_index=False)
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise TableContractError(f"{where}: a column holds mixed types: {exc}") from None
    conformed = conform(table, name, where, sort=False).table
    screened = screen(conformed, name, now, where, None, on_rows)
    kept = frame[screened.kept.to_numpy(zero_copy_only=False)]
    return kept.reset_index(drop=True), screened
