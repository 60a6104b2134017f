-- The lean row's indexes (bench/row_bytes.py measures each; docs/operations.md).
--
-- Rows arrive in about event-time order, so a BRIN index answers the time-range reads
-- (monitoring's windows, the training reader, the API's statistics by scored_at) for a few
-- kilobytes per day partition where a B-tree cost about 24 bytes a row. No query of the
-- platform reads transactions_raw by card (the API filters alerts by card, in fraud_alerts)
-- or transactions_with_score by model version: those two B-trees go.

DROP INDEX IF EXISTS transactions_raw_card_time_idx;
DROP INDEX IF EXISTS transactions_raw_event_time_idx;
DROP INDEX IF EXISTS transactions_with_score_event_time_idx;
DROP INDEX IF EXISTS transactions_with_score_model_idx;

CREATE INDEX IF NOT EXISTS transactions_raw_event_time_brin
    ON transactions_raw USING brin (event_time);
CREATE INDEX IF NOT EXISTS transactions_with_score_event_time_brin
    ON transactions_with_score USING brin (event_time);
CREATE INDEX IF NOT EXISTS transactions_with_score_scored_at_brin
    ON transactions_with_score USING brin (scored_at);
