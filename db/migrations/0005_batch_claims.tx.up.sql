-- A batch claims its next recipients on its own row before sending to
-- them, and writes each one's attempt once, with the outcome, after the
-- send: one row written per recipient instead of a 'pending' row and an
-- update of it. A batch that starts again finds here what a dead worker
-- was sending and records those without an attempt as failures with an
-- unknown outcome. 'pending' attempts remain for a recipient whose send
-- is being tried again after a temporary failure.
ALTER TABLE run_batches
    ADD COLUMN claimed        bigint[] NOT NULL DEFAULT '{}', -- client ids being sent to
    ADD COLUMN claimed_emails text[]   NOT NULL DEFAULT '{}', -- their addresses, in the same order
    ADD CHECK (cardinality(claimed) = cardinality(claimed_emails));

-- A run's failures (to try again, and whether there are any) are all that
-- is looked up by status within a run; its counts read all its attempts
-- by the (run_id, client_id) key. Indexing only failures spares every
-- successful send an index entry.
DROP INDEX attempts_run_status_idx;
CREATE INDEX attempts_run_failures_idx ON attempts (run_id, client_id) WHERE status = 'failure';

-- Every attempt of a run goes with its mailing (attempts_mailing_id_fkey
-- cascades, as runs do), and runs are never deleted on their own, so the
-- key to runs only checked each new attempt: under every batch of a run,
-- all locking the one run row for the check, that cost more than writing
-- the attempt's indexes.
ALTER TABLE attempts DROP CONSTRAINT attempts_run_id_fkey;
