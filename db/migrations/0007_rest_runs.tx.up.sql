-- Sending to the rest: a run stopped before it reached everyone (the
-- mailing switched off, the owner blocked) can be followed by a run of
-- only the recipients not reached yet.
--
-- unreached counts, of the skipped recipients of a batch and a run that
-- stopped, those who could have been mailed (not unsubscribed, not
-- bounced) but were not reached before it stopped.
ALTER TABLE run_batches ADD COLUMN unreached integer NOT NULL DEFAULT 0 CHECK (unreached >= 0);
ALTER TABLE runs ADD COLUMN unreached integer NOT NULL DEFAULT 0 CHECK (unreached >= 0);

-- rest_of is the full run (neither a retry nor a rest) whose rest a run
-- sends to: the recipients with no settled attempt in it or in any run of
-- the mailing after it.
ALTER TABLE runs ADD COLUMN rest_of bigint REFERENCES runs (id) ON DELETE SET NULL;
ALTER TABLE runs ADD CONSTRAINT runs_one_source CHECK (retry_of IS NULL OR rest_of IS NULL);

-- The runs that follow a run, for the key's SET NULL when a mailing's
-- runs are deleted (each deleted run would read every run otherwise).
CREATE INDEX runs_retry_of_idx ON runs (retry_of) WHERE retry_of IS NOT NULL;
CREATE INDEX runs_rest_of_idx ON runs (rest_of) WHERE rest_of IS NOT NULL;
