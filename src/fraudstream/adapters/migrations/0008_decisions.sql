-- Every scored row keeps its decision (docs/rules.md): the combined outcome of the active rule
-- set and the model, the rule (or "model") that made it, every rule that fired and the rule
-- set's version.
--
--   outcome         approve | review | decline (NULL: scored before decisions were stored)
--   outcome_reason  the deciding rule's name, "model", or NULL for a plain approval
--   fired_rules     every rule that fired, in evaluation order; NULL when none fired
--   rules_version   the active rule set's version; NULL when no set was active
--
-- Nullable columns without a default: adding them rewrites nothing and scans nothing, so the
-- migration takes its lock for an instant on a table of any size. Most rows fire no rule and
-- approve, and a NULL costs one bit of the row's null bitmap (bench/row_bytes.py). The values
-- are checked where they are made (rules.decision), not by a CHECK constraint, which would scan
-- every day partition under the migration's lock.

ALTER TABLE transactions_with_score
    ADD COLUMN IF NOT EXISTS outcome text,
    ADD COLUMN IF NOT EXISTS outcome_reason text,
    ADD COLUMN IF NOT EXISTS fired_rules text[],
    ADD COLUMN IF NOT EXISTS rules_version text;
