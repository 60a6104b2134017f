"""The endpoints. Handlers only translate HTTP to ``queries``/``scoring`` calls and back.

``router`` holds every endpoint that needs a bearer token (any role reads; ``Writer``
marks the writes); ``probes`` holds the health checks and the metrics, which need none.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import Response, StreamingResponse
from prometheus_client import CONTENT_TYPE_LATEST

from fraudstream.api import queries, schemas
from fraudstream.api.auth import Writer, require_reader
from fraudstream.api.problems import PROBLEM_RESPONSES, ProblemError
from fraudstream.api.runtime import ApiRuntime
from fraudstream.api.score_path import score_transaction
from fraudstream.features.catalogue import FEATURE_SET_VERSION
from fraudstream.rules.ruleset import RuleSet, RuleSetError
from fraudstream.services import rules as live_rules
from fraudstream.topics import TRANSACTION_LABELS

router = APIRouter(
    dependencies=[Depends(require_reader)],
    responses={401: PROBLEM_RESPONSES[401], 403: PROBLEM_RESPONSES[403]},
)
probes = APIRouter(tags=["health"])
TxnId = Annotated[str, Path(min_length=1, max_length=200, examples=["tx-000042"])]
_TXN_EXAMPLE = {
    "transaction_id": "tx-demo-1",
    "event_time": "2026-03-01T12:00:00Z",
    "card_id": "card-0001",
    "merchant_id": "m-0042",
    "amount": 129.9,
    "currency": "EUR",
    "merchant_category": "5732",
    "channel": "ecom",
    "country": "DE",
}


def _rt(request: Request) -> ApiRuntime:
    runtime: ApiRuntime = request.app.state.runtime
    return runtime


def _reasons(row: dict[str, Any]) -> Any:
    detail = queries.to_json(row.get("reason_detail"))
    return detail if detail else queries.to_json(row.get("reason_codes")) or []


# -- transactions, scoring ---------------------------------------------------------------


@router.get(
    "/transactions/{transaction_id}",
    response_model=schemas.TransactionResponse,
    tags=["transactions"],
    summary="A transaction with its score, decision, reason codes and model version",
    responses={404: PROBLEM_RESPONSES[404]},
)
def get_transaction(request: Request, transaction_id: TxnId) -> dict[str, Any]:
    db = _rt(request).db
    row = queries.transaction(db, transaction_id)
    if row is None:
        detail = f"no transaction {transaction_id!r} was received or scored"
        # An id carries no time: one older than the hot window is not told from one never
        # received, so the answer stays 404 and names the window it searched.
        kept = queries.retained(db, "transactions_with_score")
        if kept is not None:
            detail += (
                f" in the hot window (PostgreSQL keeps {kept[1]} days of scored transactions, "
                f"from {kept[0].date().isoformat()}; older ones are in the Parquet lake)"
            )
        raise ProblemError(404, "Not found", detail)
    scored = row["scored_id"] is not None
    return {
        "transaction_id": transaction_id,
        "raw": queries.to_json(row["raw"]),
        "score": row["score"],
        "threshold": row["threshold"],
        "decision": ("alert" if row["is_alert"] else "pass") if scored else None,
        "reason_codes": _reasons(row),
        "model_version": row["model_version"],
        "feature_set_version": row["feature_set_version"],
        "scored_at": row["scored_at"],
        "features": queries.to_json(row["features"]),
        "outcome": row["outcome"],
        "reason": (row["outcome_reason"] or "") if row["outcome"] is not None else None,
        "fired_rules": (row["fired_rules"] or []) if row["outcome"] is not None else None,
        "rules_version": row["rules_version"],
        "alert_status": row["alert_status"],
        "label": None
        if row["label_source"] is None
        else {
            "is_fraud": row["label_is_fraud"],
            "source": row["label_source"],
            "label_time": row["label_time"],
        },
    }


@router.post(
    "/score",
    response_model=schemas.ScoreResponse,
    tags=["transactions"],
    summary="Score one transaction now with the champion (nothing is stored)",
    description=(
        "Validates the canonical transaction JSON, reads the card's and merchant's current "
        "feature state from the online store, computes the features the stream would, and "
        "scores with the champion in-process. The stream's state is not changed."
    ),
    responses={422: PROBLEM_RESPONSES[422], 503: PROBLEM_RESPONSES[503]},
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {"type": "object", "description": "A canonical transaction."},
                    "example": _TXN_EXAMPLE,
                }
            },
        }
    },
)
async def score(request: Request) -> Response:
    # Answered by ``score_path.ScorePath`` before routing (the hot path); this declaration
    # documents it, and answers the same way should a request reach it. FastAPI's body and
    # response models would parse, validate and encode the data a second time;
    # ScoreResponse documents the answer.
    body = await score_transaction(_rt(request), await request.body())
    return Response(body, media_type="application/json")


# -- alerts --------------------------------------------------------------------------------


@router.get(
    "/alerts",
    response_model=schemas.AlertPage,
    tags=["alerts"],
    summary="Alerts, newest first, with filters and pagination",
    description=(
        "`410` when the whole window (`until`) lies before the first day PostgreSQL still "
        "holds: retention dropped it (the problem names the retention)."
    ),
    responses={410: PROBLEM_RESPONSES[410]},
)
def list_alerts(
    request: Request,
    status: Annotated[Literal["open", "confirmed", "rejected"] | None, Query()] = None,
    min_score: Annotated[float | None, Query(ge=0, le=1)] = None,
    card_id: str | None = None,
    merchant_id: str | None = None,
    since: Annotated[datetime | None, Query(description="event_time >= since")] = None,
    until: Annotated[datetime | None, Query(description="event_time < until")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> dict[str, Any]:
    db = _rt(request).db
    if until is not None:
        kept = queries.retained(db, "fraud_alerts")
        if kept is not None and until <= kept[0]:
            raise ProblemError(
                410,
                "Beyond retention",
                f"alerts before {kept[0].date().isoformat()} were dropped: PostgreSQL keeps "
                f"{kept[1]} days of alerts (FRAUDSTREAM_RETENTION_FRAUD_ALERTS_DAYS); the "
                "Parquet lake holds the history",
                retention_days=kept[1],
                retained_from=kept[0].isoformat(),
            )
    total, rows = queries.alerts(
        db,
        status=status,
        min_score=min_score,
        card_id=card_id,
        merchant_id=merchant_id,
        since=since,
        until=until,
        limit=limit,
        offset=offset,
    )
    items = [{**r, "reason_codes": _reasons(r)} for r in rows]
    return {"total": total, "limit": limit, "offset": offset, "items": items}


@router.get(
    "/alerts/stream",
    tags=["alerts"],
    summary="New alerts as they happen (Server-Sent Events)",
    description=(
        "An `text/event-stream`: one `alert` event per record of the `fraud_alerts` topic "
        "from the moment of connection (the scorer's alert record as JSON), and a comment "
        "every 15 s to keep proxies from closing the connection."
    ),
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}}},
)
async def stream_alerts(request: Request) -> StreamingResponse:
    feed = _rt(request).feed

    async def events() -> AsyncIterator[str]:
        queue = feed.subscribe()
        try:
            yield ": connected\n\n"
            while not await request.is_disconnected():
                try:
                    alert = await asyncio.wait_for(queue.get(), timeout=15)
                except TimeoutError:
                    yield ": keep-alive\n\n"
                    continue
                yield f"event: alert\ndata: {json.dumps(alert, default=str)}\n\n"
        finally:
            feed.unsubscribe(queue)

    return StreamingResponse(
        events(), media_type="text/event-stream", headers={"Cache-Control": "no-store"}
    )


@router.post(
    "/alerts/{transaction_id}/verdict",
    response_model=schemas.VerdictResponse,
    tags=["alerts"],
    summary="Confirm or reject an alert (becomes an analyst label; idempotent)",
    description=(
        "Sets the alert's status and publishes a label with source `analyst` (confirmed = "
        "fraud) to the `transaction_labels` topic, in one step: if Kafka does not "
        "acknowledge, nothing is stored. Label ingestion writes the label to PostgreSQL "
        "`labels` from the topic, so `GET /transactions/{id}` shows it once ingestion has "
        "read it. The answer has the label published. Repeating a verdict changes nothing."
    ),
    responses={
        404: PROBLEM_RESPONSES[404],
        422: PROBLEM_RESPONSES[422],
        503: PROBLEM_RESPONSES[503],
    },
)
def verdict(
    request: Request, transaction_id: TxnId, body: schemas.VerdictRequest, _writer: Writer
) -> dict[str, Any]:
    rt = _rt(request)
    try:
        label, row = queries.record_verdict(
            rt.db, transaction_id, body.verdict, body.analyst, rt.publish_label
        )
    except KeyError:
        raise ProblemError(
            404, "Not found", f"no alert for transaction {transaction_id!r}"
        ) from None
    except RuntimeError as exc:
        raise ProblemError(503, "Unavailable", f"verdict not recorded: {exc}") from None
    changed = label is not None
    rt.metrics.verdicts.labels(body.verdict, str(changed).lower()).inc()
    return {
        "transaction_id": transaction_id,
        "status": row["status"],
        "changed": changed,
        "verdict_by": row["verdict_by"],
        "verdict_at": row["verdict_at"],
        "label": None
        if label is None
        else {
            "is_fraud": label.is_fraud,
            "label_time": label.label_time,
            "source": label.source,
            "topic": TRANSACTION_LABELS.name,
        },
    }


# -- model and statistics ------------------------------------------------------------------


@router.get(
    "/model",
    response_model=schemas.ModelResponse,
    tags=["model"],
    summary="Champion and challenger with their metrics, and the promotion history",
)
def model(request: Request) -> dict[str, Any]:
    rt = _rt(request)
    name = rt.settings.mlflow.model_name
    overview = queries.model_overview(rt.db, name)
    return {"model_name": name, "serving": rt.model.status().version, **overview}


# -- rules -----------------------------------------------------------------------------------


def _rules_of(rule_set: RuleSet) -> dict[str, Any]:
    return {
        "version": rule_set.version,
        "description": rule_set.description,
        "lists": {name: list(values) for name, values in rule_set.lists.items()},
        "rules": [
            {
                "name": r.name,
                "condition": r.condition,
                "outcome": r.outcome,
                "priority": r.priority,
                "description": r.description,
            }
            for r in rule_set.rules
        ],
    }


@router.get(
    "/rules",
    response_model=schemas.RulesResponse,
    tags=["rules"],
    summary="The active rule set and the history of activations",
    description=(
        "`409` when the active set no longer loads with this code (a feature it reads left "
        "the catalogue): the workers keep deciding with the set they had; activate a "
        "corrected one."
    ),
    responses={409: PROBLEM_RESPONSES[409], 503: PROBLEM_RESPONSES[503]},
)
def get_rules(
    request: Request, history: Annotated[int, Query(ge=1, le=500)] = 50
) -> dict[str, Any]:
    rt = _rt(request)
    try:
        found = live_rules.active(rt.settings.postgres)
        past = live_rules.history(rt.settings.postgres, history)
    except RuleSetError as exc:
        raise ProblemError(409, "Rule set does not load", str(exc), rule=exc.rule) from None
    except queries.LOST as exc:
        raise rt.db.unavailable(exc) from None
    serving = rt.rules.current
    active = None
    if found is not None:
        active = {**_rules_of(found.rule_set), "activation": found.activation.__dict__}
    return {
        "active": active,
        "serving": serving.rule_set.version if serving is not None else None,
        "history": [a.__dict__ for a in past],
    }


@router.put(
    "/rules",
    response_model=schemas.RuleSetActivation,
    tags=["rules"],
    summary="Check a rule set, store it and make it the active one",
    description=(
        "The set is checked as `fraudstream rules check` checks a file; an invalid one is "
        "refused with `422` naming the rule (`rule`) and the fix, and the active set stays. "
        "A version names one content for good: another content under a used version is "
        "`409`; the same content again (a retry, a rollback) is activated again. The "
        "answering worker decides with the new set at once, the others at their next poll "
        "(`fraudstream serve --reload-interval`). Every activation is kept: `GET /rules`."
    ),
    responses={
        409: PROBLEM_RESPONSES[409],
        422: PROBLEM_RESPONSES[422],
        503: PROBLEM_RESPONSES[503],
    },
)
def put_rules(request: Request, body: schemas.RuleSetRequest, _writer: Writer) -> dict[str, Any]:
    rt = _rt(request)
    try:
        _, activation = live_rules.activate(
            rt.settings.postgres, body.rule_set, body.activated_by, body.comment
        )
    except RuleSetError as exc:
        raise ProblemError(422, "Invalid rule set", str(exc), rule=exc.rule) from None
    except live_rules.VersionTakenError as exc:
        raise ProblemError(409, "Version taken", str(exc)) from None
    except queries.LOST as exc:
        raise rt.db.unavailable(exc) from None
    rt.rules.load()
    return activation.__dict__


HOUR_BUCKETS_MAX = 24 * 7


@router.get(
    "/rules/stats",
    response_model=schemas.RuleStats,
    tags=["rules"],
    summary="Hit rate and precision of every rule and of the decision, per time bucket",
    description=(
        "Over the last `hours` (at most 90 days; at most 168 hours with `bucket=hour`), per "
        "bucket of `scored_at` (when the decision was made, by which rule set version): rows "
        "scored, the rule set versions live, and for each rule that fired in the window and "
        "for the decision as a whole (outcome review or decline) the hits, the hit rate, the "
        "hits labelled so far, the frauds among them and the precision (null while no hit is "
        "labelled). Labels count as they arrive: a later call sees the labels since."
    ),
    responses={422: PROBLEM_RESPONSES[422], 503: PROBLEM_RESPONSES[503]},
)
def rule_stats(
    request: Request,
    hours: Annotated[float, Query(gt=0, le=24 * 90, description="The window, in hours.")] = 24,
    bucket: Annotated[Literal["hour", "day"], Query(description="The bucket's width.")] = "hour",
) -> dict[str, Any]:
    if bucket == "hour" and hours > HOUR_BUCKETS_MAX:
        raise ProblemError(
            422,
            "Invalid request",
            f"hours: bucket=hour covers at most {HOUR_BUCKETS_MAX} hours (7 days); "
            f"ask bucket=day for {hours:g} hours",
            kind="invalid-request",
            errors=[{"field": "hours", "message": f"at most {HOUR_BUCKETS_MAX} with bucket=hour"}],
        )
    until = datetime.now(UTC)
    since = until - timedelta(hours=hours)
    found = queries.rule_stats(_rt(request).db, since, until, bucket)
    return {"since": since, "until": until, "bucket": bucket, **found}


def _since(hours: float) -> datetime:
    return datetime.now(UTC) - timedelta(hours=hours)


@router.get(
    "/stats/score-distribution",
    response_model=schemas.ScoreDistribution,
    tags=["statistics"],
    summary="Histogram of scores over the last hours, alerts and passes apart",
)
def score_distribution(
    request: Request,
    hours: Annotated[float, Query(gt=0, le=24 * 90)] = 24,
    bins: Annotated[int, Query(ge=2, le=100)] = 20,
) -> dict[str, Any]:
    since = _since(hours)
    return {"since": since, **queries.score_distribution(_rt(request).db, since, bins)}


@router.get(
    "/stats/alert-rate",
    response_model=schemas.AlertRate,
    tags=["statistics"],
    summary="Scored transactions, alerts, alert rate and end-to-end latency per time bucket",
)
def alert_rate(
    request: Request,
    hours: Annotated[float, Query(gt=0, le=24 * 90)] = 24,
    bucket: Literal["minute", "hour", "day"] = "minute",
) -> dict[str, Any]:
    since = _since(hours)
    points = queries.alert_rate(_rt(request).db, since, bucket)
    return {"since": since, "bucket": bucket, "points": points}


# -- health and metrics --------------------------------------------------------------------


@probes.get("/health/live", response_model=schemas.Health)
def live() -> dict[str, Any]:
    """The process answers (Kubernetes restarts it otherwise)."""
    return {"status": "ok", "checks": {}}


@probes.get(
    "/health/ready",
    response_model=schemas.Health,
    responses={503: {"model": schemas.Health, "description": "not ready; checks say why"}},
)
def ready(request: Request, response: Response) -> dict[str, Any]:
    """Ready when the champion is loaded with this code's feature-set version and the
    database and online store answer. ``rules`` says which rule set decides beside the model
    (none active is not a failure: the model decides alone). ``admission`` reports this
    worker's saturation (requests in flight against its limit, refusals so far) without
    failing the probe: a saturated worker still answers what it can, and taking every
    saturated pod out of the Service would turn an overload into an outage. ``worker`` is
    the answering process (`fraudstream serve --workers N` runs N)."""
    rt = _rt(request)
    status = rt.model.status()
    checks = {"model": status.detail, "rules": rt.rules.detail}
    ok = status.loaded and status.feature_set_version == FEATURE_SET_VERSION
    if status.loaded and not ok:
        checks["model"] = (
            f"model feature-set version {status.feature_set_version}, code {FEATURE_SET_VERSION}"
        )
    for name, probe in (("postgres", _probe_db), ("online_store", _probe_store)):
        try:
            probe(rt)
            checks[name] = "ok"
        except Exception as exc:
            checks[name] = str(exc)[:200]
            ok = False
    checks["alert_stream"] = "ok" if rt.feed.ready else "not connected to Kafka"
    checks["admission"] = rt.admission.describe()
    if not ok:
        response.status_code = 503
    return {"status": "ok" if ok else "unavailable", "checks": checks, "worker": os.getpid()}


def _probe_db(rt: ApiRuntime) -> None:
    with rt.db.transaction() as cur:
        cur.execute("SELECT 1")


def _probe_store(rt: ApiRuntime) -> None:
    rt.store.ping()


@probes.get("/metrics", response_class=Response)
def metrics(request: Request) -> Response:
    """Prometheus metrics of the API (every worker's, summed)."""
    return Response(_rt(request).metrics.exposition(), media_type=CONTENT_TYPE_LATEST)
