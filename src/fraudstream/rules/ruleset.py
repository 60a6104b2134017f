"""Rule sets as data: a versioned file of named lists and rules, checked as a whole at load.

File shape (YAML, or JSON which YAML reads too)::

    version: "2026-03-01.1"        # required: stored with every decision
    description: optional text
    lists:                          # optional: name -> values (all strings or all numbers)
      blocked_cards: [card-000123]
    rules:
      - name: card_testing_burst    # lower-case identifier, unique in the set
        condition: card_count_1h >= 5 and card_amount_mean_1h < 3
        outcome: decline            # decline | review | approve
        priority: 10                # integer; lower first within an outcome
        description: optional text

Loading checks every field and compiles every condition against the ``vocabulary``
(the feature catalogue, the transaction contract and ``score``); the first problem
raises one ``RuleSetError`` naming the file, the rule and the fix.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml

from fraudstream.features.catalogue import feature_names
from fraudstream.rules.language import Vocabulary, compile_condition
from fraudstream.rules.values import Expr, ExpressionError, Kind
from fraudstream.schema import fields

Outcome = Literal["decline", "review", "approve"]
OUTCOMES: tuple[Outcome, ...] = ("decline", "review", "approve")
TIERS: tuple[Outcome, ...] = ("approve", "decline", "review")
"""The order rules are listed and looked at in: the precedence of ``decision``."""
SCORE = "score"
"""The model's calibrated fraud probability, in [0, 1]; NaN when no model scored the row."""
_NAME = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
_TOP_KEYS = {"version", "description", "lists", "rules"}
_RULE_KEYS = {"name", "condition", "outcome", "priority", "description"}
_KINDS: dict[str, Kind] = {"string": "string", "float": "number", "integer": "number"}
STARTER = "starter.yaml"


class RuleSetError(ValueError):
    """A rule set that cannot be loaded; ``rule`` names the rule at fault, when one is."""

    def __init__(self, message: str, rule: str | None = None) -> None:
        super().__init__(message)
        self.rule = rule


@dataclass(frozen=True)
class Rule:
    """One rule: when ``condition`` holds for a transaction, it ``fires`` with ``outcome``."""

    name: str
    condition: str
    outcome: Outcome
    priority: int
    description: str
    expr: Expr


@dataclass(frozen=True)
class RuleSet:
    """A checked rule set; ``rules`` in precedence order (``TIERS``, then priority, then name)."""

    version: str
    description: str
    lists: Mapping[str, tuple[Any, ...]]
    rules: tuple[Rule, ...]

    @cached_property
    def names(self) -> frozenset[str]:
        """Every column some condition reads."""
        return frozenset().union(*(r.expr.names for r in self.rules))

    @cached_property
    def fields(self) -> tuple[str, ...]:
        """The transaction contract's fields some condition reads, sorted."""
        return tuple(sorted(self.names & transaction_columns().keys()))


def transaction_columns() -> dict[str, Kind]:
    """The transaction contract's fields a rule may read (timestamps excluded: the
    catalogue's ``txn_hour_utc`` and friends say what a rule needs of the time)."""
    return {
        f.name: _KINDS[f.logical_type] for f in fields("transaction") if f.logical_type in _KINDS
    }


def optional_columns() -> frozenset[str]:
    """Contract fields a batch or a row may lack: absent reads as missing."""
    return frozenset(f.name for f in fields("transaction") if not f.required)


def vocabulary(lists: Mapping[str, tuple[Kind, tuple[Any, ...]]] | None = None) -> Vocabulary:
    """The names a condition may use: features, transaction fields, ``score``, ``lists``."""
    columns: dict[str, Kind] = {**transaction_columns(), SCORE: "number"}
    columns.update({name: "number" for name in feature_names()})
    return Vocabulary(columns, dict(lists or {}))


def _fail(where: str, problem: str, rule: str | None = None) -> RuleSetError:
    label = f"rule {rule!r}: " if rule else ""
    return RuleSetError(f"{where}: {label}{problem}", rule)


def _lists(raw: Any, where: str) -> dict[str, tuple[Kind, tuple[Any, ...]]]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise _fail(where, "'lists' must map list names to lists of values")
    columns = vocabulary().columns
    out: dict[str, tuple[Kind, tuple[Any, ...]]] = {}
    for name, values in raw.items():
        if not isinstance(name, str) or not _NAME.match(name):
            raise _fail(where, f"list name {name!r} must be a lower-case identifier")
        if name in columns:
            raise _fail(where, f"list name {name!r} is already a feature or field name")
        if not isinstance(values, list):
            raise _fail(where, f"list {name!r} must be a list of values")
        if all(isinstance(v, str) for v in values):
            out[name] = ("string", tuple(values))
        elif all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
            out[name] = ("number", tuple(float(v) for v in values))
        else:
            raise _fail(where, f"list {name!r} must hold only strings or only numbers")
    return out


def _rule(raw: Any, index: int, where: str, words: Vocabulary) -> Rule:
    if not isinstance(raw, dict):
        raise _fail(where, f"rules[{index}] must be a mapping with name, condition, outcome")
    name = raw.get("name")
    if not isinstance(name, str) or not _NAME.match(name):
        raise _fail(where, f"rules[{index}]: name {name!r} must be a lower-case identifier")
    unknown = set(raw) - _RULE_KEYS
    if unknown:
        known = ", ".join(sorted(_RULE_KEYS))
        raise _fail(where, f"unknown key(s) {', '.join(sorted(unknown))}; known: {known}", name)
    outcome = raw.get("outcome")
    if outcome not in OUTCOMES:
        raise _fail(where, f"outcome {outcome!r} must be one of {', '.join(OUTCOMES)}", name)
    priority = raw.get("priority", 100)
    if not isinstance(priority, int) or isinstance(priority, bool) or not 0 <= priority <= 10_000:
        raise _fail(where, f"priority {priority!r} must be an integer from 0 to 10000", name)
    description = raw.get("description") or ""
    if not isinstance(description, str):
        raise _fail(where, "description must be text", name)
    condition = raw.get("condition")
    if not isinstance(condition, str):
        raise _fail(where, "condition must be an expression in a string", name)
    try:
        expr = compile_condition(condition, words)
    except ExpressionError as exc:
        raise _fail(where, f"{exc} in: {condition.strip()}", name) from None
    return Rule(name, condition.strip(), outcome, priority, description.strip(), expr)


def parse_rule_set(document: Any, where: str = "rule set") -> RuleSet:
    """A checked ``RuleSet`` from a parsed document (a dict as the file holds it)."""
    if not isinstance(document, dict):
        raise _fail(where, "the file must hold a mapping with version and rules")
    unknown = set(document) - _TOP_KEYS
    if unknown:
        known = ", ".join(sorted(_TOP_KEYS))
        raise _fail(where, f"unknown key(s) {', '.join(sorted(map(str, unknown)))}; known: {known}")
    version = document.get("version")
    if isinstance(version, int) and not isinstance(version, bool):
        version = str(version)
    if not isinstance(version, str) or not version.strip():
        raise _fail(where, 'a version is required, as text (e.g. version: "2026-03-01.1")')
    lists = _lists(document.get("lists"), where)
    raw_rules = document.get("rules")
    if not isinstance(raw_rules, list) or not raw_rules:
        raise _fail(where, "'rules' must be a non-empty list")
    words = vocabulary(lists)
    rules: list[Rule] = []
    for index, raw in enumerate(raw_rules):
        rule = _rule(raw, index, where, words)
        if any(r.name == rule.name for r in rules):
            raise _fail(where, "the name is used twice", rule.name)
        rules.append(rule)
    rules.sort(key=lambda r: (TIERS.index(r.outcome), r.priority, r.name))
    description = document.get("description") or ""
    return RuleSet(
        version.strip(),
        str(description).strip(),
        {name: values for name, (_, values) in lists.items()},
        tuple(rules),
    )


def load_rule_set(path: Path | str) -> RuleSet:
    """Read and check a rule set file (YAML or JSON). Raises ``RuleSetError``."""
    source = Path(path)
    if not source.is_file():
        raise RuleSetError(f"{source}: no such file")
    try:
        document = yaml.safe_load(source.read_text("utf-8"))
    except yaml.YAMLError as exc:
        raise RuleSetError(f"{source}: not valid YAML or JSON: {exc}") from None
    return parse_rule_set(document, str(source))


def starter_rule_set() -> RuleSet:
    """The rule set shipped with the package (``rules/starter.yaml``)."""
    text = resources.files(__package__).joinpath(STARTER).read_text("utf-8")
    return parse_rule_set(yaml.safe_load(text), STARTER)


def starter_path() -> Path:
    """Where the shipped starter rule set is on disk (to copy and edit)."""
    return Path(str(resources.files(__package__).joinpath(STARTER)))
