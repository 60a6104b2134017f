"""The promotion gate: may a challenger replace the champion?"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Decision:
    promote: bool
    reason: str


def decide(challenger: dict[str, Any], champion: dict[str, Any] | None) -> Decision:
    """Promote when there is no champion, or when, on the same holdout, the challenger
    has a higher Average Precision and a Card Precision@100 that is not worse."""
    if champion is None:
        return Decision(True, "there is no champion yet")
    ap_new, ap_old = challenger["average_precision"], champion["average_precision"]
    cp_new, cp_old = challenger["card_precision_at_100"], champion["card_precision_at_100"]
    if any(math.isnan(v) for v in (ap_new, ap_old, cp_new, cp_old)):
        return Decision(False, "the holdout has no frauds (or only frauds): nothing to compare")
    figures = f"AP {ap_new:.4f} vs {ap_old:.4f}, CP@100 {cp_new:.4f} vs {cp_old:.4f}"
    if ap_new <= ap_old:
        return Decision(False, f"the challenger's Average Precision is not higher ({figures})")
    if cp_new < cp_old:
        return Decision(False, f"the challenger's Card Precision@100 is worse ({figures})")
    return Decision(True, f"the challenger is better on the same holdout ({figures})")
