"""Knobs of the generator: world size, fraud rate, scenario weights, label delays.

Every knob has a documented default (see ``docs/data.md``); a config plus a seed
determines the output exactly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime

#: The fraud scenarios in a fixed order; the code of a scenario is its index + 1
#: (0 means genuine).
SCENARIOS: tuple[str, ...] = (
    "card_testing",
    "account_takeover",
    "compromised_terminal",
    "merchant_collusion",
    "impossible_travel",
    "high_amount",
    "laundering_merchant",
)

DEFAULT_WEIGHTS: dict[str, float] = {
    "card_testing": 0.20,
    "account_takeover": 0.20,
    "compromised_terminal": 0.20,
    "merchant_collusion": 0.10,
    "impossible_travel": 0.10,
    "high_amount": 0.10,
    "laundering_merchant": 0.10,
}


MIN_MERCHANTS = 300  # every category in every city (19 x 15) and some choice


class ConfigError(ValueError):
    """A generator knob is out of range; the message names it."""


@dataclass(frozen=True)
class LabelConfig:
    """How fraud becomes known.

    Delays are log-normal: ``median`` in days, ``sigma`` the spread of the log,
    never shorter than ``min_hours`` nor longer than ``max_days`` (infinite: no
    cap). A share ``analyst_share`` of the reported
    fraud is found by analysts (short delay); the rest arrives as chargebacks.
    ``under_reporting_rate`` of the fraud is never labelled, so it looks genuine.
    ``genuine_review_rate`` of genuine transactions get an analyst label
    ``is_fraud=false`` (cleared cases).
    """

    chargeback_median_days: float = 14.0
    chargeback_sigma: float = 0.5
    analyst_median_days: float = 1.0
    analyst_sigma: float = 0.8
    min_hours: float = 1.0
    analyst_share: float = 0.3
    under_reporting_rate: float = 0.1
    genuine_review_rate: float = 0.0005
    max_days: float = math.inf

    def check(self) -> None:
        for name in ("analyst_share", "under_reporting_rate", "genuine_review_rate"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ConfigError(f"{name} must be within [0, 1], got {value}")
        for name in ("chargeback_median_days", "analyst_median_days", "min_hours"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"{name} must be positive, got {getattr(self, name)}")
        if not self.max_days * 24.0 >= self.min_hours:
            raise ConfigError(
                f"max_days must be at least min_hours / 24 ({self.min_hours / 24:g}), "
                f"got {self.max_days}"
            )


#: Named label presets (``--labels-regime``); ``--label KNOB=VALUE`` adjusts one further.
#: ``mixed``: the defaults, 30 % of reported fraud found by analysts within about a day,
#: the rest as chargebacks around two weeks. ``chargeback-only``: a programme without
#: same-day verdicts: every label is a chargeback 7 to 90 days after the transaction
#: (log-normal, median 21 days), and no genuine transaction is cleared by an analyst.
LABEL_REGIMES: dict[str, LabelConfig] = {
    "mixed": LabelConfig(),
    "chargeback-only": LabelConfig(
        analyst_share=0.0,
        genuine_review_rate=0.0,
        chargeback_median_days=21.0,
        chargeback_sigma=0.55,
        min_hours=7 * 24.0,
        max_days=90.0,
    ),
}
DEFAULT_LABEL_REGIME = "mixed"


def label_regime(name: str) -> LabelConfig:
    """The label preset called ``name``; ConfigError listing the known ones otherwise."""
    try:
        return LABEL_REGIMES[name]
    except KeyError:
        known = ", ".join(LABEL_REGIMES)
        raise ConfigError(f"unknown label regime {name!r}; known: {known}") from None


@dataclass(frozen=True)
class GeneratorConfig:
    """The world and the period to simulate.

    ``fraud_rate`` is the share of all generated transactions that are fraud
    (before under-reporting); ``scenario_weights`` split it between scenarios and
    are normalised, so a weight of 0 switches a scenario off.
    ``tx_per_customer_per_day`` is the mean activity; customers differ around it.
    ``account_verification_rate`` is the share of genuine ecom transactions that are
    zero-amount authorisations (account verification, card-on-file set-up).
    """

    seed: int = 0
    start: datetime = datetime(2026, 1, 1, tzinfo=UTC)
    days: float = 30.0
    customers: int = 10_000
    merchants: int = 2_000
    tx_per_customer_per_day: float = 2.0
    fraud_rate: float = 0.005
    account_verification_rate: float = 0.01
    scenario_weights: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_WEIGHTS))
    labels: LabelConfig = field(default_factory=LabelConfig)

    def check(self) -> None:
        """Raise ConfigError naming the first knob that is out of range."""
        if self.start.tzinfo is None:
            raise ConfigError("start must be timezone-aware (UTC)")
        if self.days <= 0:
            raise ConfigError(f"days must be positive, got {self.days}")
        if self.customers < 10 or self.merchants < MIN_MERCHANTS:
            raise ConfigError(
                f"the world needs at least 10 customers and {MIN_MERCHANTS} merchants "
                "(one of every category in every city)"
            )
        if not 0.0 <= self.account_verification_rate <= 1.0:
            raise ConfigError(
                f"account_verification_rate must be within [0, 1], "
                f"got {self.account_verification_rate}"
            )
        if not 0.0 <= self.fraud_rate < 0.5:
            raise ConfigError(f"fraud_rate must be within [0, 0.5), got {self.fraud_rate}")
        unknown = set(self.scenario_weights) - set(SCENARIOS)
        if unknown:
            raise ConfigError(f"unknown scenario(s) {sorted(unknown)}; known: {list(SCENARIOS)}")
        if any(w < 0 for w in self.scenario_weights.values()):
            raise ConfigError("scenario weights must not be negative")
        if self.fraud_rate > 0 and sum(self.scenario_weights.values()) <= 0:
            raise ConfigError("fraud_rate > 0 needs at least one positive scenario weight")
        self.labels.check()

    def normalised_weights(self) -> dict[str, float]:
        """Weights of every scenario, summing to 1 (missing scenarios weigh 0)."""
        total = sum(self.scenario_weights.values())
        if total <= 0:
            return dict.fromkeys(SCENARIOS, 0.0)
        return {s: self.scenario_weights.get(s, 0.0) / total for s in SCENARIOS}
