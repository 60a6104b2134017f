"""Request and response bodies, with the examples the OpenAPI document shows."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class ReasonCode(BaseModel):
    feature: str = Field(examples=["card_amount_zscore_30d"])
    value: float | None = Field(description="The feature's value (null when missing).")
    contribution: float = Field(description="SHAP contribution to the fraud log-odds.")


class ScoreResponse(BaseModel):
    transaction_id: str
    score: float = Field(ge=0, le=1, examples=[0.93])
    threshold: float = Field(examples=[0.41])
    decision: Literal["alert", "pass"]
    reason_codes: list[ReasonCode] = Field(description="Up to three, largest first.")
    model_version: str = Field(examples=["7"])
    feature_set_version: str = Field(examples=["1"])
    features: dict[str, float | None] = Field(description="The feature vector, by name.")
    outcome: Literal["approve", "review", "decline"] = Field(
        description="The decision of the active rules and the model (docs/rules.md): an "
        "approve rule, else a decline rule, else review at or above the model's threshold, "
        "else a review rule, else approve. Without an active rule set the model decides alone."
    )
    reason: str = Field(
        examples=["card_testing_burst"],
        description="The deciding rule, `model` (the score at or above the threshold), or "
        "empty for a plain approval.",
    )
    fired_rules: list[str] = Field(description="Every rule that fired, whatever decided.")
    rules_version: str | None = Field(
        examples=["starter-1"], description="The active rule set's version (null: none)."
    )


class TransactionResponse(BaseModel):
    model_config = ConfigDict(extra="allow")

    transaction_id: str
    raw: dict[str, Any] | None = Field(description="The transaction as received (None if absent).")
    score: float | None
    threshold: float | None
    decision: Literal["alert", "pass"] | None
    reason_codes: list[ReasonCode] | list[str]
    model_version: str | None
    feature_set_version: str | None
    scored_at: datetime | None
    features: dict[str, Any] | None
    outcome: Literal["approve", "review", "decline"] | None = Field(
        description="The stream's decision with the active rule set (docs/rules.md); null "
        "when not scored, or scored before decisions were stored."
    )
    reason: str | None = Field(description="The deciding rule, `model`, or empty.")
    fired_rules: list[str] | None = Field(description="Every rule that fired.")
    rules_version: str | None = Field(description="The rule set's version (null: none active).")
    alert_status: Literal["open", "confirmed", "rejected"] | None
    label: dict[str, Any] | None


class Alert(BaseModel):
    transaction_id: str
    event_time: datetime
    card_id: str
    merchant_id: str
    amount: float
    score: float
    threshold: float
    model_version: str
    reason_codes: list[ReasonCode] | list[str]
    status: Literal["open", "confirmed", "rejected"]
    verdict_by: str | None
    verdict_at: datetime | None
    created_at: datetime


class AlertPage(BaseModel):
    total: int = Field(description="Alerts matching the filters.")
    limit: int
    offset: int
    items: list[Alert]


class VerdictRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"verdict": "confirmed", "analyst": "ana"}]}
    )

    verdict: Literal["confirmed", "rejected"] = Field(
        description="confirmed: fraud (label is_fraud=true); rejected: genuine."
    )
    analyst: str = Field(min_length=1, max_length=100, description="Who decided (audit).")


class PublishedLabel(BaseModel):
    is_fraud: bool
    label_time: datetime = Field(description="The verdict's time: the label applies from it on.")
    source: Literal["analyst"]
    topic: str = Field(
        examples=["transaction_labels"],
        description="Where it was published; label ingestion writes it to PostgreSQL `labels`.",
    )


class VerdictResponse(BaseModel):
    transaction_id: str
    status: Literal["open", "confirmed", "rejected"]
    changed: bool = Field(description="False when the alert already had this verdict.")
    verdict_by: str | None
    verdict_at: datetime | None
    label: PublishedLabel | None = Field(
        description="The label published (acknowledged by Kafka); null when nothing changed."
    )


class ModelVersion(BaseModel):
    version: str
    aliases: list[str]
    feature_set_version: str | None
    threshold: float | None
    metrics: dict[str, Any]
    run_id: str | None
    registered_at: datetime
    promoted_at: datetime | None


class Promotion(BaseModel):
    alias: str
    version: str
    previous_version: str | None
    reason: str
    metrics: dict[str, Any]
    decided_by: str
    promoted_at: datetime


class ModelResponse(BaseModel):
    model_name: str
    serving: str | None = Field(description="The version this API scores with.")
    champion: ModelVersion | None
    challenger: ModelVersion | None
    promotions: list[Promotion]


_RULE_SET_EXAMPLE: dict[str, Any] = {
    "version": "2026-03-01.1",
    "lists": {"blocked_cards": ["card-000123"]},
    "rules": [
        {
            "name": "blocked_card",
            "condition": "card_id in blocked_cards",
            "outcome": "decline",
            "priority": 0,
        },
        {
            "name": "card_testing_burst",
            "condition": "card_distinct_merchants_1h >= 4 and card_amount_mean_1h < 5",
            "outcome": "decline",
            "priority": 10,
        },
    ],
}


class RuleSetRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"rule_set": _RULE_SET_EXAMPLE, "activated_by": "ana", "comment": "block a card"}
            ]
        },
    )

    rule_set: dict[str, Any] = Field(
        description="The rule set as a rule set file holds it (docs/rules.md): version, "
        "description, lists, rules. Checked as `fraudstream rules check` checks a file."
    )
    activated_by: str = Field(min_length=1, max_length=100, description="Who (audit).")
    comment: str = Field(default="", max_length=1000, description="Why (audit).")


class RuleSetActivation(BaseModel):
    version: str = Field(examples=["2026-03-01.1"])
    previous_version: str | None = Field(description="The set it replaced (null: the first).")
    activated_by: str
    comment: str
    activated_at: datetime


class RuleOut(BaseModel):
    name: str
    condition: str
    outcome: Literal["approve", "review", "decline"]
    priority: int
    description: str


class ActiveRuleSet(BaseModel):
    version: str
    description: str
    lists: dict[str, list[Any]]
    rules: list[RuleOut] = Field(description="In precedence order (docs/rules.md).")
    activation: RuleSetActivation


class RulesResponse(BaseModel):
    active: ActiveRuleSet | None = Field(
        description="The active set (null: none, the model decides alone)."
    )
    serving: str | None = Field(
        description="The version the answering worker decides with; another worker takes a "
        "newly activated set at its next poll."
    )
    history: list[RuleSetActivation] = Field(description="Activations, newest first.")


class HistogramBin(BaseModel):
    lower: float
    upper: float
    passed: int
    alerted: int


class ScoreDistribution(BaseModel):
    since: datetime
    threshold: float | None
    bins: list[HistogramBin]


class RatePoint(BaseModel):
    start: datetime
    scored: int
    alerts: int
    alert_rate: float
    latency_p50_ms: float | None
    latency_p95_ms: float | None


class AlertRate(BaseModel):
    since: datetime
    bucket: Literal["minute", "hour", "day"]
    points: list[RatePoint]


class RuleFigures(BaseModel):
    hits: int = Field(examples=[12], description="Rows it fired on (flagged, for the decision).")
    hit_rate: float | None = Field(
        examples=[0.004], description="hits / scored (null: nothing scored)."
    )
    labelled: int = Field(examples=[5], description="Hits with a label so far.")
    frauds: int = Field(examples=[4], description="Labelled hits labelled fraud.")
    precision: float | None = Field(
        examples=[0.8], description="frauds / labelled (null: no hit is labelled yet)."
    )


class RuleFigure(RuleFigures):
    rule: str = Field(examples=["card_testing_burst"])


class RuleStatsBucket(BaseModel):
    start: datetime = Field(description="The bucket's start (UTC), by scored_at.")
    scored: int = Field(description="Rows scored in the bucket, whatever decided them.")
    rules_versions: list[str] = Field(
        examples=[["2026-03-01.1"]],
        description="The rule set versions that decided rows of the bucket (empty: none).",
    )
    decision: RuleFigures = Field(
        description="The decision as a whole: rows whose outcome is review or decline, "
        "whether a rule or the model decided."
    )
    per_rule: list[RuleFigure] = Field(
        description="Every rule that fired in the window, in the order of `rules` (zero "
        "hits where it did not fire in this bucket)."
    )


class RuleStatsTotal(BaseModel):
    scored: int
    rules_versions: list[str]
    decision: RuleFigures
    per_rule: list[RuleFigure]


class RuleStats(BaseModel):
    since: datetime
    until: datetime
    bucket: Literal["hour", "day"]
    active_version: str | None = Field(
        examples=["2026-03-01.1"], description="The active rule set (null: none was activated)."
    )
    rules: list[str] = Field(
        examples=[["blocked_card", "card_testing_burst"]],
        description="Every rule that fired in the window, most hits first.",
    )
    buckets: list[RuleStatsBucket] = Field(description="Buckets with scored rows, oldest first.")
    total: RuleStatsTotal = Field(description="The same over the whole window.")


class Health(BaseModel):
    status: Literal["ok", "unavailable"]
    checks: dict[str, str]
    worker: int | None = Field(default=None, description="Process id of the answering worker.")
