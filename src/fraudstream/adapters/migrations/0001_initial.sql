-- The platform's tables. Every write is an upsert keyed by transaction_id
-- (model_metadata: by model name and version), so a replayed batch changes nothing.

CREATE TABLE IF NOT EXISTS transactions_raw (
    transaction_id     text PRIMARY KEY,
    event_time         timestamptz NOT NULL,
    card_id            text NOT NULL,
    merchant_id        text NOT NULL,
    amount             numeric(14, 2) NOT NULL CHECK (amount > 0),
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
    ingested_at        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS transactions_raw_event_time_idx ON transactions_raw (event_time);
CREATE INDEX IF NOT EXISTS transactions_raw_card_time_idx ON transactions_raw (card_id, event_time);

CREATE TABLE IF NOT EXISTS transactions_with_score (
    transaction_id       text PRIMARY KEY,
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
    scored_at            timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS transactions_with_score_event_time_idx
    ON transactions_with_score (event_time);
CREATE INDEX IF NOT EXISTS transactions_with_score_model_idx
    ON transactions_with_score (model_version);

CREATE TABLE IF NOT EXISTS fraud_alerts (
    transaction_id  text PRIMARY KEY,
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
    created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS fraud_alerts_created_idx ON fraud_alerts (created_at);
CREATE INDEX IF NOT EXISTS fraud_alerts_status_idx ON fraud_alerts (status, event_time);

CREATE TABLE IF NOT EXISTS labels (
    transaction_id  text PRIMARY KEY,
    is_fraud        boolean NOT NULL,
    fraud_scenario  text,
    label_time      timestamptz NOT NULL,
    source          text NOT NULL CHECK (source IN ('chargeback', 'analyst')),
    ingested_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS labels_label_time_idx ON labels (label_time);

CREATE TABLE IF NOT EXISTS model_metadata (
    model_name           text NOT NULL,
    version              text NOT NULL,
    run_id               text,
    aliases              text[] NOT NULL DEFAULT '{}',
    feature_set_version  text,
    threshold            double precision,
    metrics              jsonb NOT NULL DEFAULT '{}'::jsonb,
    registered_at        timestamptz NOT NULL DEFAULT now(),
    promoted_at          timestamptz,
    PRIMARY KEY (model_name, version)
);
