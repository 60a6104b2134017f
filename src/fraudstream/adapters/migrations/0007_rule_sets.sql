-- Rule sets as versioned data (docs/rules.md).
--
-- rule_sets keeps every rule set ever stored, once per version: a version names one content
-- for good (storing another content under a used version is refused by the service), so a
-- decision's rules_version always says which rules made it. rule_set_activations is the
-- history: every activation, who made it, when and why, and what it replaced. The active set
-- is the latest activation; activating an older version again (a rollback) is a new row.

CREATE TABLE IF NOT EXISTS rule_sets (
    version     text PRIMARY KEY,
    document    jsonb NOT NULL,
    checksum    text NOT NULL,
    created_by  text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS rule_set_activations (
    id                bigserial PRIMARY KEY,
    version           text NOT NULL REFERENCES rule_sets (version),
    previous_version  text REFERENCES rule_sets (version),
    activated_by      text NOT NULL,
    comment           text NOT NULL DEFAULT '',
    activated_at      timestamptz NOT NULL DEFAULT now()
);
