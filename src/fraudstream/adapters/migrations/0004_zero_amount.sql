-- Zero-amount authorisations are valid transactions (account verification, card-on-file set-up;
-- see docs/data.md): the contract's amount is >= 0, so the raw table accepts 0.00 too.

ALTER TABLE transactions_raw DROP CONSTRAINT IF EXISTS transactions_raw_amount_check;
ALTER TABLE transactions_raw ADD CONSTRAINT transactions_raw_amount_check CHECK (amount >= 0);
