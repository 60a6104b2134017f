"""What the API reads from and writes to PostgreSQL.

Reads: one transaction with its score, alert and label; alerts with filters;
the model in production and its promotion history; score distribution and alert
rate over time; each rule's hit rate and precision over time. The one write is an analyst's
verdict, which updates the alert and publishes a label (source ``analyst``) to
``transaction_labels`` before it commits; label ingestion writes that label to ``labels``, as
it writes every other one.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import psycopg2
from psycopg2.extras import RealDictCursor
from psycopg2.pool import ThreadedConnectionPool

from fraudstream.adapters.partitions import retained_from
from fraudstream.api.problems import ProblemError
from fraudstream.schema import Label
from fraudstream.settings import PostgresSettings

Row = dict[str, Any]


LOST = (psycopg2.OperationalError, psycopg2.InterfaceError)
"""The connection or the server is gone (a restart, a failover): worth a retry."""


class Database:
    """A small thread-safe connection pool; each ``transaction`` commits or rolls back.

    When PostgreSQL is unreachable, or a pooled connection died with a server restart,
    the request fails with 503 and Retry-After (not 500) and the dead connection leaves the
    pool, so the API serves again as soon as the server is back, without a restart.
    """

    def __init__(self, settings: PostgresSettings, size: int = 8) -> None:
        self.where = f"PostgreSQL at {settings.host}:{settings.port}"
        # No connection at start (the API starts while the database is away), and up to
        # ``size`` kept between requests: psycopg2's pool keeps a returned connection only
        # while fewer than ``minconn`` are idle, and opens ``minconn`` when it is built.
        self.pool = ThreadedConnectionPool(0, size, settings.dsn(), connect_timeout=5)
        self.pool.minconn = size

    def unavailable(self, exc: Exception) -> ProblemError:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return ProblemError(
            503,
            "Unavailable",
            f"{self.where} cannot be reached ({first}); retry shortly",
            headers={"Retry-After": "1"},
        )

    @contextmanager
    def transaction(self) -> Iterator[Any]:
        try:
            conn = self.pool.getconn()
        except LOST as exc:
            raise self.unavailable(exc) from None
        lost = False
        try:
            with conn, conn.cursor(cursor_factory=RealDictCursor) as cur:
                yield cur
        except LOST as exc:
            lost = True
            raise self.unavailable(exc) from None
        finally:
            self.pool.putconn(conn, close=lost or bool(conn.closed))

    def close(self) -> None:
        self.pool.closeall()


def transaction(db: Database, transaction_id: str) -> Row | None:
    """The raw transaction, its score, alert and label; None when the id is unknown."""
    with db.transaction() as cur:
        cur.execute(
            """SELECT r.transaction_id AS raw_id, to_jsonb(r) - 'ingested_at'
                      - 'source_topic' - 'source_partition' - 'source_offset' AS raw,
                      s.transaction_id AS scored_id, s.event_time, s.card_id, s.merchant_id,
                      s.amount::float8 AS amount, s.score, s.threshold, s.is_alert,
                      s.model_name, s.model_version, s.feature_set_version, s.reason_codes,
                      s.features, s.shadow_score, s.shadow_model_version, s.scored_at,
                      s.outcome, s.outcome_reason, s.fired_rules, s.rules_version,
                      a.status AS alert_status, a.reason_detail, a.verdict_by, a.verdict_at,
                      l.is_fraud AS label_is_fraud, l.source AS label_source,
                      l.label_time
               FROM (SELECT %(id)s AS id) q
               LEFT JOIN transactions_raw r ON r.transaction_id = q.id
               LEFT JOIN transactions_with_score s ON s.transaction_id = q.id
               LEFT JOIN fraud_alerts a ON a.transaction_id = q.id
               LEFT JOIN labels l ON l.transaction_id = q.id""",
            {"id": transaction_id},
        )
        row = cur.fetchone()
    if row is None or (row["raw_id"] is None and row["scored_id"] is None):
        return None
    return dict(row)


def retained(db: Database, table: str) -> tuple[datetime, int] | None:
    """(start of the first day ``table`` still holds, its retention in days) once retention
    has dropped some of its day partitions; None while it holds everything it was given."""
    with db.transaction() as cur:
        found = retained_from(cur, table)
    if found is None:
        return None
    first, days = found
    return datetime(first.year, first.month, first.day, tzinfo=UTC), days


ALERT_COLUMNS = """transaction_id, event_time, card_id, merchant_id, amount::float8 AS amount,
    score, threshold, model_version, reason_codes, reason_detail, status, verdict_by,
    verdict_at, created_at"""


def alerts(
    db: Database,
    *,
    status: str | None,
    min_score: float | None,
    card_id: str | None,
    merchant_id: str | None,
    since: datetime | None,
    until: datetime | None,
    limit: int,
    offset: int,
) -> tuple[int, list[Row]]:
    """(total matching, one page) newest first (by creation, then id for a stable order)."""
    clauses, params = [], {}
    for name, value, clause in (
        ("status", status, "status = %(status)s"),
        ("min_score", min_score, "score >= %(min_score)s"),
        ("card_id", card_id, "card_id = %(card_id)s"),
        ("merchant_id", merchant_id, "merchant_id = %(merchant_id)s"),
        ("since", since, "event_time >= %(since)s"),
        ("until", until, "event_time < %(until)s"),
    ):
        if value is not None:
            clauses.append(clause)
            params[name] = value
    where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
    with db.transaction() as cur:
        cur.execute(f"SELECT count(*) AS n FROM fraud_alerts {where}", params)
        total = int(cur.fetchone()["n"])
        cur.execute(
            f"SELECT {ALERT_COLUMNS} FROM fraud_alerts {where} "
            "ORDER BY created_at DESC, transaction_id LIMIT %(limit)s OFFSET %(offset)s",
            {**params, "limit": limit, "offset": offset},
        )
        return total, [dict(r) for r in cur.fetchall()]


def model_overview(db: Database, model_name: str, history: int = 20) -> Row:
    """Versions holding an alias (champion, challenger) with metrics, and the promotions."""
    with db.transaction() as cur:
        cur.execute(
            """SELECT version, aliases, feature_set_version, threshold, metrics, run_id,
                      registered_at, promoted_at
               FROM model_metadata WHERE model_name = %s AND aliases <> '{}'
               ORDER BY registered_at DESC""",
            (model_name,),
        )
        versions = [dict(r) for r in cur.fetchall()]
        cur.execute(
            """SELECT alias, version, previous_version, reason, metrics, decided_by, promoted_at
               FROM model_promotions WHERE model_name = %s
               ORDER BY promoted_at DESC LIMIT %s""",
            (model_name, history),
        )
        promotions = [dict(r) for r in cur.fetchall()]
    by_alias = {alias: v for v in versions for alias in v["aliases"]}
    return {
        "champion": by_alias.get("champion"),
        "challenger": by_alias.get("challenger"),
        "promotions": promotions,
    }


def score_distribution(db: Database, since: datetime, bins: int) -> Row:
    """Counts of scores in ``bins`` equal-width bins of [0, 1], alerts and passes apart."""
    with db.transaction() as cur:
        cur.execute(
            """SELECT least(width_bucket(score, 0, 1, %(bins)s), %(bins)s) AS bin,
                      count(*) FILTER (WHERE NOT is_alert) AS passed,
                      count(*) FILTER (WHERE is_alert) AS alerted
               FROM transactions_with_score WHERE scored_at >= %(since)s
               GROUP BY 1 ORDER BY 1""",
            {"bins": bins, "since": since},
        )
        found = {int(r["bin"]): r for r in cur.fetchall()}
        cur.execute(
            "SELECT avg(threshold) AS t FROM transactions_with_score WHERE scored_at >= %s",
            (since,),
        )
        threshold = cur.fetchone()["t"]
    return {
        "bins": [
            {
                "lower": (i - 1) / bins,
                "upper": i / bins,
                "passed": int(found[i]["passed"]) if i in found else 0,
                "alerted": int(found[i]["alerted"]) if i in found else 0,
            }
            for i in range(1, bins + 1)
        ],
        "threshold": threshold,
    }


_BUCKETS = {"minute": "1 minute", "hour": "1 hour", "day": "1 day"}
# Buckets start on UTC hours and days whatever the session's time zone (a bare '2000-01-01'
# would be midnight in that zone, and an hour off by 30 minutes in some).
_ORIGIN = "'2000-01-01 00:00+00'::timestamptz"


def alert_rate(db: Database, since: datetime, bucket: str) -> list[Row]:
    """Per time bucket (by ``scored_at``): scored, alerts, rate and end-to-end latency.

    Latency is ``scored_at - ingest_time`` (the Kafka record's CreateTime), in ms.
    """
    with db.transaction() as cur:
        cur.execute(
            f"""SELECT date_bin(%(step)s::interval, scored_at, {_ORIGIN}) AS t,
                      count(*) AS scored, count(*) FILTER (WHERE is_alert) AS alerts,
                      percentile_cont(0.5) WITHIN GROUP (ORDER BY
                          extract(epoch FROM scored_at - ingest_time) * 1000) AS p50,
                      percentile_cont(0.95) WITHIN GROUP (ORDER BY
                          extract(epoch FROM scored_at - ingest_time) * 1000) AS p95
               FROM transactions_with_score WHERE scored_at >= %(since)s
               GROUP BY 1 ORDER BY 1""",
            {"step": _BUCKETS[bucket], "since": since},
        )
        rows = cur.fetchall()
    return [
        {
            "start": r["t"],
            "scored": int(r["scored"]),
            "alerts": int(r["alerts"]),
            "alert_rate": int(r["alerts"]) / int(r["scored"]),
            "latency_p50_ms": r["p50"],
            "latency_p95_ms": r["p95"],
        }
        for r in rows
    ]


_FLAGGED = ("review", "decline")


def _figures(hits: int, labelled: int, frauds: int, scored: int) -> Row:
    """Hits, hit rate among ``scored``, labelled hits, frauds among them and precision (null
    while no hit is labelled)."""
    return {
        "hits": hits,
        "hit_rate": hits / scored if scored else None,
        "labelled": labelled,
        "frauds": frauds,
        "precision": frauds / labelled if labelled else None,
    }


def rule_stats(db: Database, since: datetime, until: datetime, bucket: str) -> Row:
    """Per time bucket of ``scored_at`` in [since, until): rows scored, the rule set versions
    that decided them, and per rule (and for the decision as a whole: outcome review or
    decline) the hits, hit rate, hits labelled so far, frauds among them and precision.

    ``scored_at`` rather than ``event_time``: a decision, and the rule set version that made
    it, belong to the moment of scoring, so a new version shows in the bucket it went live,
    and a replayed or late event counts when it was decided, not in a past bucket (a window
    on event_time would miss it). Two reads of the window, each through the BRIN index on
    ``scored_at`` of every day partition: one counts the rows (grouped, no sort), the other
    reads only the flagged rows (a rule fired, or the outcome is review or decline), joins
    their labels by key, and unnests ``fired_rules``. Every rule that fired in the window has
    a figure in every bucket (zero hits where it did not fire), in order of hits.
    """
    window = {"step": _BUCKETS[bucket], "since": since, "until": until}
    bin_ = f"date_bin(%(step)s::interval, s.scored_at, {_ORIGIN})"
    in_window = "s.scored_at >= %(since)s AND s.scored_at < %(until)s"
    with db.transaction() as cur:
        cur.execute(
            f"""SELECT {bin_} AS t, s.rules_version, count(*) AS scored
                FROM transactions_with_score s WHERE {in_window}
                GROUP BY 1, 2 ORDER BY 1, 2""",
            window,
        )
        counted = cur.fetchall()
        cur.execute(
            f"""WITH flagged AS MATERIALIZED (
                    SELECT {bin_} AS t, s.fired_rules,
                           s.outcome IN %(flagged)s AS decided, l.is_fraud
                    FROM transactions_with_score s
                    LEFT JOIN labels l ON l.transaction_id = s.transaction_id
                    WHERE {in_window}
                      AND (s.fired_rules IS NOT NULL OR s.outcome IN %(flagged)s))
                SELECT f.t, r.rule, count(*) AS hits, count(f.is_fraud) AS labelled,
                       count(*) FILTER (WHERE f.is_fraud) AS frauds
                FROM flagged f CROSS JOIN LATERAL unnest(f.fired_rules) AS r(rule)
                WHERE f.fired_rules IS NOT NULL
                GROUP BY 1, 2
                UNION ALL
                SELECT t, NULL, count(*), count(is_fraud), count(*) FILTER (WHERE is_fraud)
                FROM flagged WHERE decided GROUP BY 1""",
            {**window, "flagged": _FLAGGED},
        )
        flagged = cur.fetchall()
        cur.execute("SELECT version FROM rule_set_activations ORDER BY id DESC LIMIT 1")
        active = cur.fetchone()
    scored: dict[datetime, int] = {}
    versions: dict[datetime, list[str]] = {}
    for r in counted:
        scored[r["t"]] = scored.get(r["t"], 0) + int(r["scored"])
        if r["rules_version"] is not None:
            versions.setdefault(r["t"], []).append(r["rules_version"])
    counts: dict[tuple[datetime, str | None], tuple[int, int, int]] = {
        (r["t"], r["rule"]): (int(r["hits"]), int(r["labelled"]), int(r["frauds"])) for r in flagged
    }
    totals: dict[str | None, tuple[int, int, int]] = {}
    for (_, rule), (hits, labelled, frauds) in counts.items():
        h, la, fr = totals.get(rule, (0, 0, 0))
        totals[rule] = (h + hits, la + labelled, fr + frauds)
    rules = sorted((r for r in totals if r is not None), key=lambda r: (-totals[r][0], r))
    every = sum(scored.values())
    return {
        "active_version": None if active is None else active["version"],
        "rules": rules,
        "buckets": [
            {
                "start": t,
                "scored": n,
                "rules_versions": versions.get(t, []),
                "decision": _figures(*counts.get((t, None), (0, 0, 0)), n),
                "per_rule": [
                    {"rule": rule, **_figures(*counts.get((t, rule), (0, 0, 0)), n)}
                    for rule in rules
                ],
            }
            for t, n in sorted(scored.items())
        ],
        "total": {
            "scored": every,
            "rules_versions": sorted({v for vs in versions.values() for v in vs}),
            "decision": _figures(*totals.get(None, (0, 0, 0)), every),
            "per_rule": [{"rule": rule, **_figures(*totals[rule], every)} for rule in rules],
        },
    }


def record_verdict(
    db: Database, transaction_id: str, verdict: str, analyst: str, publish: Any
) -> tuple[Label | None, Row]:
    """Set the alert's verdict and publish its label; (the label published or None, alert row).

    Idempotent: the same verdict again changes nothing (no write, no label). A
    different verdict replaces the first and publishes a newer label (the newer label
    wins). The label is keyed: it carries the alert's merchant and event time, so the
    scorer applies it without a link. ``publish(label)`` is called inside the database
    transaction, so a label that Kafka does not acknowledge leaves the alert untouched.
    The ``labels`` table is not written here: label ingestion writes the label from the
    topic. Raises KeyError for an unknown alert.
    """
    with db.transaction() as cur:
        cur.execute(
            f"SELECT {ALERT_COLUMNS} FROM fraud_alerts WHERE transaction_id = %s FOR UPDATE",
            (transaction_id,),
        )
        row = cur.fetchone()
        if row is None:
            raise KeyError(transaction_id)
        if row["status"] == verdict:
            return None, dict(row)
        cur.execute(
            f"""UPDATE fraud_alerts SET status = %s, verdict_by = %s, verdict_at = now()
                WHERE transaction_id = %s RETURNING {ALERT_COLUMNS}""",
            (verdict, analyst, transaction_id),
        )
        updated = dict(cur.fetchone())
        label = Label(
            transaction_id=transaction_id,
            is_fraud=verdict == "confirmed",
            label_time=updated["verdict_at"],
            source="analyst",
            merchant_id=updated["merchant_id"],
            event_time=updated["event_time"],
        )
        publish(label)
    return label, updated


def drift(db: Database, model_name: str) -> list[Row]:
    """The latest monitoring value and breach flag of every metric (for /metrics)."""
    with db.transaction() as cur:
        cur.execute(
            """SELECT DISTINCT ON (metric) metric, value, breached
               FROM monitoring_metrics WHERE model_name = %s
               ORDER BY metric, window_end DESC""",
            (model_name,),
        )
        return [dict(r) for r in cur.fetchall()]


def to_json(value: Any) -> Any:
    """jsonb columns come back parsed; text fallbacks are parsed here."""
    return json.loads(value) if isinstance(value, str) else value
