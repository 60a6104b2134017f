-- The scorer's three clocks on every scored row, so end-to-end latency can be measured in SQL:
-- event_time (from the event), ingest_time (the Kafka record's CreateTime) and scored_at (when
-- the scorer produced the score; set by the scorer, not by the database clock).
-- late_event marks a transaction older than its card's or merchant's latest one (scored on the
-- current state without being added to it; see docs/scorer.md).

ALTER TABLE transactions_with_score ADD COLUMN IF NOT EXISTS ingest_time timestamptz;
ALTER TABLE transactions_with_score ADD COLUMN IF NOT EXISTS late_event boolean NOT NULL DEFAULT false;
ALTER TABLE fraud_alerts ADD COLUMN IF NOT EXISTS ingest_time timestamptz;
ALTER TABLE fraud_alerts ADD COLUMN IF NOT EXISTS scored_at timestamptz;
ALTER TABLE fraud_alerts ADD COLUMN IF NOT EXISTS reason_detail jsonb;
