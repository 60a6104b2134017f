-- The hot window: transactions_raw, transactions_with_score and fraud_alerts become
-- declaratively partitioned by day of event_time (UTC), one partition per day named
-- <table>_pYYYYMMDD, so retention drops whole days (DETACH ... CONCURRENTLY, DROP TABLE)
-- instead of deleting rows. See docs/operations.md.
--
-- The upsert key. A primary key of a partitioned table must contain the partition key, so
-- each table's key becomes (transaction_id, event_time). event_time is part of the immutable
-- transaction (it comes from the event, never from a clock), so a replayed row carries the
-- same event_time, lands in the same partition and meets its first copy there: every write
-- stays an upsert keyed by the transaction, ON CONFLICT (transaction_id, event_time).
-- labels and model_metadata stay as they are (small; labels live as long as the model needs).
--
-- Existing rows are copied into the new tables (one partition per day they cover); the old
-- tables are dropped at the end of this migration's transaction.

CREATE TABLE IF NOT EXISTS partition_drops (
    id              bigserial PRIMARY KEY,
    table_name      text NOT NULL,
    partition_name  text NOT NULL,
    day             date NOT NULL,
    retention_days  integer NOT NULL,
    bytes           bigint NOT NULL,
    duration_ms     double precision NOT NULL,
    dropped_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS partition_drops_table_day_idx ON partition_drops (table_name, day);

-- The day partitions of ``parent`` from first_day to last_day (inclusive) that do not exist
-- yet; returns how many were made. Each is created apart and then attached, which takes only
-- a SHARE UPDATE EXCLUSIVE lock on the parent, so writers into other days are not blocked.
-- Creators are serialised by an advisory lock (concurrent callers make each partition once),
-- taken only when a partition is missing: a call for existing days takes no lock.
CREATE OR REPLACE FUNCTION ensure_day_partitions(parent text, first_day date, last_day date)
RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
    day date;
    child text;
    low timestamptz;
    high timestamptz;
    made integer := 0;
BEGIN
    IF NOT EXISTS (
        SELECT 1 FROM generate_series(first_day, last_day, interval '1 day') d
        WHERE to_regclass(format('%s_p%s', parent, to_char(d, 'YYYYMMDD'))) IS NULL
    ) THEN
        RETURN 0;
    END IF;
    PERFORM pg_advisory_xact_lock(7201312);
    FOR day IN SELECT d::date FROM generate_series(first_day, last_day, interval '1 day') d LOOP
        child := format('%s_p%s', parent, to_char(day, 'YYYYMMDD'));
        CONTINUE WHEN to_regclass(child) IS NOT NULL;
        low := day::timestamp AT TIME ZONE 'UTC';
        high := (day + 1)::timestamp AT TIME ZONE 'UTC';
        EXECUTE format('CREATE TABLE %I (LIKE %I INCLUDING DEFAULTS INCLUDING CONSTRAINTS)',
                       child, parent);
        -- The range as a CHECK lets ATTACH skip its scan; it is dropped once attached.
        EXECUTE format('ALTER TABLE %I ADD CONSTRAINT %I CHECK (event_time >= %L AND event_time < %L)',
                       child, child || '_range', low, high);
        EXECUTE format('ALTER TABLE %I ATTACH PARTITION %I FOR VALUES FROM (%L) TO (%L)',
                       parent, child, low, high);
        EXECUTE format('ALTER TABLE %I DROP CONSTRAINT %I', child, child || '_range');
        made := made + 1;
    END LOOP;
    RETURN made;
END $$;

ALTER TABLE transactions_raw RENAME TO transactions_raw_v4;
ALTER TABLE transactions_raw_v4 RENAME CONSTRAINT transactions_raw_pkey TO transactions_raw_v4_pkey;
DROP INDEX transactions_raw_event_time_idx;
DROP INDEX transactions_raw_card_time_idx;

CREATE TABLE transactions_raw (
    transaction_id     text NOT NULL,
    event_time         timestamptz NOT NULL,
    card_id            text NOT NULL,
    merchant_id        text NOT NULL,
    amount             numeric(14, 2) NOT NULL CONSTRAINT transactions_raw_amount_check
                       CHECK (amount >= 0),
    currency           char(3) NOT NULL,
    customer_id        text,
    merchant_category  text,
    channel            text,
    country            text,
    lat                double precision,
    lon                double precision,
    device_id          text,
    ip                 text,
    schema_version     integer,
    source_topic       text,
    source_partition   integer,
    source_offset      bigint,
    ingested_at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (transaction_id, event_time)
) PARTITION BY RANGE (event_time);
CREATE INDEX transactions_raw_event_time_idx ON transactions_raw (event_time);
CREATE INDEX transactions_raw_card_time_idx ON transactions_raw (card_id, event_time);

ALTER TABLE transactions_with_score RENAME TO transactions_with_score_v4;
ALTER TABLE transactions_with_score_v4
    RENAME CONSTRAINT transactions_with_score_pkey TO transactions_with_score_v4_pkey;
DROP INDEX transactions_with_score_event_time_idx;
DROP INDEX transactions_with_score_model_idx;

CREATE TABLE transactions_with_score (
    transaction_id       text NOT NULL,
    event_time           timestamptz NOT NULL,
    card_id              text NOT NULL,
    merchant_id          text NOT NULL,
    amount               numeric(14, 2) NOT NULL,
    score                double precision NOT NULL CHECK (score >= 0 AND score <= 1),
    threshold            double precision NOT NULL,
    is_alert             boolean NOT NULL,
    model_name           text NOT NULL,
    model_version        text NOT NULL,
    feature_set_version  text NOT NULL,
    reason_codes         jsonb NOT NULL DEFAULT '[]'::jsonb,
    features             jsonb,
    shadow_score         double precision,
    shadow_model_version text,
    scored_at            timestamptz NOT NULL DEFAULT now(),
    ingest_time          timestamptz,
    late_event           boolean NOT NULL DEFAULT false,
    PRIMARY KEY (transaction_id, event_time)
) PARTITION BY RANGE (event_time);
CREATE INDEX transactions_with_score_event_time_idx ON transactions_with_score (event_time);
CREATE INDEX transactions_with_score_model_idx ON transactions_with_score (model_version);

ALTER TABLE fraud_alerts RENAME TO fraud_alerts_v4;
ALTER TABLE fraud_alerts_v4 RENAME CONSTRAINT fraud_alerts_pkey TO fraud_alerts_v4_pkey;
DROP INDEX fraud_alerts_created_idx;
DROP INDEX fraud_alerts_status_idx;

CREATE TABLE fraud_alerts (
    transaction_id  text NOT NULL,
    event_time      timestamptz NOT NULL,
    card_id         text NOT NULL,
    merchant_id     text NOT NULL,
    amount          numeric(14, 2) NOT NULL,
    score           double precision NOT NULL,
    threshold       double precision NOT NULL,
    model_version   text NOT NULL,
    reason_codes    jsonb NOT NULL DEFAULT '[]'::jsonb,
    status          text NOT NULL DEFAULT 'open'
                    CHECK (status IN ('open', 'confirmed', 'rejected')),
    verdict_by      text,
    verdict_at      timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now(),
    ingest_time     timestamptz,
    scored_at       timestamptz,
    reason_detail   jsonb,
    PRIMARY KEY (transaction_id, event_time)
) PARTITION BY RANGE (event_time);
CREATE INDEX fraud_alerts_created_idx ON fraud_alerts (created_at);
CREATE INDEX fraud_alerts_status_idx ON fraud_alerts (status, event_time);

-- Partitions for every day the old tables hold, then their rows, column by column name.
SELECT ensure_day_partitions(t, first_day, last_day)
FROM (SELECT 'transactions_raw' AS t, min(event_time AT TIME ZONE 'UTC')::date AS first_day,
             max(event_time AT TIME ZONE 'UTC')::date AS last_day FROM transactions_raw_v4
      UNION ALL
      SELECT 'transactions_with_score', min(event_time AT TIME ZONE 'UTC')::date,
             max(event_time AT TIME ZONE 'UTC')::date FROM transactions_with_score_v4
      UNION ALL
      SELECT 'fraud_alerts', min(event_time AT TIME ZONE 'UTC')::date,
             max(event_time AT TIME ZONE 'UTC')::date FROM fraud_alerts_v4) days
WHERE first_day IS NOT NULL;

INSERT INTO transactions_raw (transaction_id, event_time, card_id, merchant_id, amount, currency,
    customer_id, merchant_category, channel, country, lat, lon, device_id, ip, schema_version,
    source_topic, source_partition, source_offset, ingested_at)
SELECT transaction_id, event_time, card_id, merchant_id, amount, currency,
    customer_id, merchant_category, channel, country, lat, lon, device_id, ip, schema_version,
    source_topic, source_partition, source_offset, ingested_at
FROM transactions_raw_v4;

INSERT INTO transactions_with_score (transaction_id, event_time, card_id, merchant_id, amount,
    score, threshold, is_alert, model_name, model_version, feature_set_version, reason_codes,
    features, shadow_score, shadow_model_version, scored_at, ingest_time, late_event)
SELECT transaction_id, event_time, card_id, merchant_id, amount,
    score, threshold, is_alert, model_name, model_version, feature_set_version, reason_codes,
    features, shadow_score, shadow_model_version, scored_at, ingest_time, late_event
FROM transactions_with_score_v4;

INSERT INTO fraud_alerts (transaction_id, event_time, card_id, merchant_id, amount, score,
    threshold, model_version, reason_codes, status, verdict_by, verdict_at, created_at,
    ingest_time, scored_at, reason_detail)
SELECT transaction_id, event_time, card_id, merchant_id, amount, score,
    threshold, model_version, reason_codes, status, verdict_by, verdict_at, created_at,
    ingest_time, scored_at, reason_detail
FROM fraud_alerts_v4;

DROP TABLE transactions_raw_v4;
DROP TABLE transactions_with_score_v4;
DROP TABLE fraud_alerts_v4;
