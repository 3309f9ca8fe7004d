-- A batch stamps each claim it makes with a time of its own making: a
-- batch whose connection was lost with the answer to its statement finds
-- by it whether the claim on its row is the one that statement made (and
-- so was never sent) or another batch's. claimed_at stays the database's
-- time of the claim, which orphan detection compares with now().
ALTER TABLE run_batches ADD COLUMN claim_stamp timestamptz;
