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


class Health(BaseModel):
    status: Literal["ok", "unavailable"]
    checks: dict[str, str]
    worker: int | None = Field(default=None, description="Process id of the answering worker.")
