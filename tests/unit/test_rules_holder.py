"""The active rule set is held as the champion is: swapped on a new version, a set this code
cannot load refused for good while the current one keeps deciding (``scoring.reload.Holder``)."""

from __future__ import annotations

from typing import Any

from fraudstream.rules.ruleset import RuleSet, RuleSetError, parse_rule_set
from fraudstream.scoring.reload import Holder


def _doc(version: str, condition: str) -> dict[str, Any]:
    return {
        "version": version,
        "rules": [{"name": "r", "condition": condition, "outcome": "review"}],
    }


def test_a_stored_set_that_no_longer_loads_is_refused_and_the_current_one_stays() -> None:
    stored = {
        "1": _doc("1", "amount > 10"),
        "2": _doc("2", "card_count_99h > 1"),  # a feature this code does not compute
        "3": _doc("3", "amount > 30"),
    }
    active: dict[str, str | None] = {"active": None}
    loads: list[str] = []

    def load(version: str, _role: str) -> RuleSet:
        loads.append(version)
        return parse_rule_set(stored[version], f"stored rule set {version!r}")

    holder: Holder[RuleSet] = Holder(
        "active",
        lookup=lambda alias: active[alias],
        loader=load,
        interval_s=0.0,
        name="the rule set",
        missing_hint="activate one",
        refusals=(RuleSetError,),
    )
    assert not holder.refresh()
    assert holder.detail == "the rule set has no @active yet: activate one"
    active["active"] = "1"
    assert holder.refresh()
    assert holder.current is not None
    assert holder.current.rules[0].condition == "amount > 10"
    active["active"] = "2"
    assert not holder.refresh()
    assert holder.current.version == "1"
    assert holder.counts.refused == 1
    assert holder.detail.startswith("refused @active version 2: stored rule set '2': rule 'r'")
    assert not holder.refresh()
    assert loads == ["1", "2"], "a refused version is not loaded again"
    active["active"] = "3"
    assert holder.refresh()
    assert holder.current.version == "3"
    assert holder.detail == "serving version 3 (@active)"
