-- Promotion history and monitoring results.
--
-- model_promotions keeps every move of an alias (model_metadata.promoted_at only
-- holds the latest one). request_key makes a retried promotion a no-op: the
-- retraining DAG uses its run's data interval, the CLI a fresh key per call.
-- monitoring_metrics holds one value per model, window and metric, so re-running
-- a monitoring window overwrites its own rows instead of adding new ones.

CREATE TABLE IF NOT EXISTS model_promotions (
    id                bigserial PRIMARY KEY,
    request_key       text NOT NULL UNIQUE,
    model_name        text NOT NULL,
    alias             text NOT NULL DEFAULT 'champion',
    version           text NOT NULL,
    previous_version  text,
    reason            text NOT NULL,
    metrics           jsonb NOT NULL DEFAULT '{}'::jsonb,
    decided_by        text NOT NULL DEFAULT 'cli',
    promoted_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS model_promotions_model_time_idx
    ON model_promotions (model_name, promoted_at DESC);

CREATE TABLE IF NOT EXISTS monitoring_metrics (
    model_name     text NOT NULL,
    model_version  text NOT NULL,
    window_start   timestamptz NOT NULL,
    window_end     timestamptz NOT NULL,
    metric         text NOT NULL,
    value          double precision,
    threshold      double precision,
    breached       boolean NOT NULL DEFAULT false,
    details        jsonb NOT NULL DEFAULT '{}'::jsonb,
    computed_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (model_name, window_end, metric)
);
CREATE INDEX IF NOT EXISTS monitoring_metrics_breached_idx
    ON monitoring_metrics (breached, window_end);
