-- Sending to the rest: a run stopped before it reached everyone (the
-- mailing switched off, the owner blocked) can be followed by a run of
-- only the recipients it did not reach.
--
-- unreached counts, of a batch's and a run's skipped recipients, those
-- who could have been mailed (not unsubscribed, not bounced) but were
-- not reached before the run stopped.
ALTER TABLE run_batches ADD COLUMN unreached integer NOT NULL DEFAULT 0 CHECK (unreached >= 0);
ALTER TABLE runs ADD COLUMN unreached integer NOT NULL DEFAULT 0 CHECK (unreached >= 0);

-- rest_of is the full run (neither a retry nor a rest) whose unreached
-- recipients a run sends to: those with no attempt in it or in any run of
-- the mailing after it.
ALTER TABLE runs ADD COLUMN rest_of bigint REFERENCES runs (id) ON DELETE SET NULL;
ALTER TABLE runs ADD CONSTRAINT runs_one_source CHECK (retry_of IS NULL OR rest_of IS NULL);
