"""The feature catalogue: every feature declared once, as data.

Training, the streaming scorer, the model signature and the documentation all
read this catalogue. The order of ``FEATURES`` is the column order of every
feature vector; changing a feature's meaning, name or position requires a new
``FEATURE_SET_VERSION`` so that a scorer refuses a model it cannot feed.

Windows are in event time and half-open, ``(t - window, t]``: they include the
current transaction and exclude one exactly ``window`` seconds older.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

FEATURE_SET_VERSION = "3"

Entity = Literal["card", "merchant", "transaction"]

HOUR = 3600.0
DAY = 86400.0


@dataclass(frozen=True)
class FeatureSpec:
    """One feature: ``window_s`` is the event-time window in seconds, None when not windowed.

    Every feature is a float64; ``missing`` says when it is NaN (the model treats NaN as unknown).
    """

    name: str
    entity: Entity
    window_s: float | None
    description: str
    dtype: str = "float64"
    missing: str = ""
    lag_s: float = 0.0
    """The window ends this long before the event (0: it ends at the event)."""

    @property
    def window(self) -> str:
        """The window as people write it: ``1h``, ``7d``, ``30d, 14d back`` or ``-``."""
        if self.window_s is None:
            return "-"
        text = _duration(self.window_s)
        return f"{text}, {_duration(self.lag_s)} back" if self.lag_s else text


def _duration(seconds: float) -> str:
    return f"{seconds / HOUR:g}h" if seconds <= DAY else f"{seconds / DAY:g}d"


CARD_WINDOWS: tuple[tuple[str, float], ...] = (
    ("1h", HOUR),
    ("24h", DAY),
    ("7d", 7 * DAY),
    ("30d", 30 * DAY),
)
MERCHANT_WINDOWS: tuple[tuple[str, float], ...] = (("1d", DAY), ("7d", 7 * DAY), ("30d", 30 * DAY))
MATURITY_DELAY_S = 14 * DAY
"""The maturity delay of the merchant risk features: their windows end this long before the
event, so they count only transactions old enough for most of their fraud labels to have
arrived. A property of the feature set (changing it needs a new ``FEATURE_SET_VERSION``);
training records it with the model beside the label delays it saw (docs/model.md, "Slow
labels", says how to choose it)."""
CARD_HISTORY_S = max(seconds for _, seconds in CARD_WINDOWS)
"""The card's horizon, its longest window (30 days): a card idle this long is a new card."""
MERCHANT_HISTORY_S = max(seconds for _, seconds in MERCHANT_WINDOWS) + MATURITY_DELAY_S
"""The merchant's horizon: its longest window plus the maturity delay (44 days)."""
HISTORY_S = max(CARD_HISTORY_S, MERCHANT_HISTORY_S)
"""The history horizon, the longest look-back of any feature: events older than this are
dropped from every entity's state, and an entity idle this long has a new entity's features."""
STATE_SLACK_S = 7 * DAY
STATE_TTL_S = HISTORY_S + STATE_SLACK_S
"""How long a stored entity state (Spark's state store, the online store) outlives its last
write, in processing time: the horizon plus a week of slack for a stream whose event time
falls behind the clock (a backlog, or an outage shorter than that)."""

_NO_HISTORY = "the card has no earlier transaction in the window"


def _card_window_specs() -> list[FeatureSpec]:
    specs = []
    for label, seconds in CARD_WINDOWS:
        specs += [
            FeatureSpec(
                f"card_count_{label}",
                "card",
                seconds,
                f"Transactions of the card in the last {label}, this one included.",
            ),
            FeatureSpec(
                f"card_amount_sum_{label}",
                "card",
                seconds,
                f"Sum of the card's amounts in the last {label}, this one included.",
            ),
            FeatureSpec(
                f"card_amount_mean_{label}",
                "card",
                seconds,
                f"Mean of the card's amounts in the last {label}, this one included.",
            ),
        ]
    return specs


def _card_specs() -> list[FeatureSpec]:
    return [
        *_card_window_specs(),
        FeatureSpec(
            "card_amount_ratio_30d",
            "card",
            30 * DAY,
            "Amount divided by the mean of the card's earlier amounts in the last 30d.",
            missing=_NO_HISTORY,
        ),
        FeatureSpec(
            "card_amount_zscore_30d",
            "card",
            30 * DAY,
            "(amount - mean) / standard deviation of the card's earlier amounts in the last 30d.",
            missing="fewer than 2 earlier transactions in 30d, or all of equal amount",
        ),
        FeatureSpec(
            "card_seconds_since_prev",
            "card",
            CARD_HISTORY_S,
            "Seconds since the card's previous transaction.",
            missing=_NO_HISTORY,
        ),
        FeatureSpec(
            "card_distinct_merchants_1h",
            "card",
            HOUR,
            "Distinct merchants of the card in the last 1h, this one included.",
        ),
        FeatureSpec(
            "card_distinct_merchants_24h",
            "card",
            DAY,
            "Distinct merchants of the card in the last 24h, this one included.",
        ),
        FeatureSpec(
            "card_new_merchant_30d",
            "card",
            30 * DAY,
            "1 if the card has no earlier transaction at this merchant in the last 30d, else 0.",
        ),
        FeatureSpec(
            "card_new_category_30d",
            "card",
            30 * DAY,
            "1 if the card has no earlier transaction in this merchant category in 30d, else 0.",
            missing="merchant_category absent",
        ),
        FeatureSpec(
            "card_distance_km_prev",
            "card",
            CARD_HISTORY_S,
            "Great-circle distance (km) from the card's previous located transaction.",
            missing="lat/lon absent here, or no earlier located transaction in 30d",
        ),
        FeatureSpec(
            "card_speed_kmh_prev",
            "card",
            CARD_HISTORY_S,
            "Implied speed (km/h) from the previous located transaction; time floored at 60 s.",
            missing="lat/lon absent here, or no earlier located transaction in 30d",
        ),
        FeatureSpec(
            "card_zero_amount_count_24h",
            "card",
            DAY,
            "Zero-amount authorisations (account verification, card-on-file set-up; card "
            "testers' probes) of the card in the last 24h, this one included.",
        ),
    ]


def _transaction_specs() -> list[FeatureSpec]:
    return [
        FeatureSpec("txn_amount", "transaction", None, "The amount, in the transaction currency."),
        FeatureSpec("txn_hour_utc", "transaction", None, "Hour of day of the event time (UTC)."),
        FeatureSpec("txn_is_weekend", "transaction", None, "1 on Saturday or Sunday (UTC)."),
        FeatureSpec("txn_is_night", "transaction", None, "1 between 00:00 and 06:00 (UTC)."),
        FeatureSpec(
            "txn_is_zero_amount",
            "transaction",
            None,
            "1 for a zero-amount authorisation (amount 0.00: account verification, card-on-file "
            "set-up, or a card tester's probe), else 0.",
        ),
    ]


def _merchant_specs() -> list[FeatureSpec]:
    specs = []
    for label, seconds in MERCHANT_WINDOWS:
        specs.append(
            FeatureSpec(
                f"merchant_count_{label}",
                "merchant",
                seconds,
                f"Transactions at the merchant in the last {label}, this one included.",
            )
        )
    for label, seconds in MERCHANT_WINDOWS:
        specs.append(
            FeatureSpec(
                f"merchant_fraud_risk_{label}",
                "merchant",
                seconds,
                f"Share of the merchant's transactions of the last {label} known to be fraud: "
                "only labels whose label_time is at or before this event time count.",
            )
        )
    delay = f"{MATURITY_DELAY_S / DAY:g}d"
    for label, seconds in MERCHANT_WINDOWS:
        specs.append(
            FeatureSpec(
                f"merchant_mature_fraud_risk_{label}",
                "merchant",
                seconds,
                f"Share known to be fraud of the merchant's transactions in the {label} that "
                f"end {delay} before this event (the maturity delay): labels known at this "
                "event time over transactions old enough for their labels to have arrived.",
                missing=f"no transaction at the merchant in that {label}",
                lag_s=MATURITY_DELAY_S,
            )
        )
    return specs


TRANSACTION_FEATURES: tuple[FeatureSpec, ...] = tuple(_transaction_specs())
CARD_FEATURES: tuple[FeatureSpec, ...] = tuple(_card_specs())
MERCHANT_FEATURES: tuple[FeatureSpec, ...] = tuple(_merchant_specs())
FEATURES: tuple[FeatureSpec, ...] = TRANSACTION_FEATURES + CARD_FEATURES + MERCHANT_FEATURES


def feature_names() -> list[str]:
    """Column names of a feature vector, in order."""
    return [spec.name for spec in FEATURES]


def catalogue_markdown() -> str:
    """The catalogue as a Markdown table, for docs/model.md."""
    lines = [
        f"Feature-set version **{FEATURE_SET_VERSION}**, {len(FEATURES)} features.",
        "",
        "| # | name | entity | window | dtype | description | NaN when |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for i, spec in enumerate(FEATURES, 1):
        lines.append(
            f"| {i} | `{spec.name}` | {spec.entity} | {spec.window} | {spec.dtype} "
            f"| {spec.description} | {spec.missing or '-'} |"
        )
    return "\n".join(lines) + "\n"
