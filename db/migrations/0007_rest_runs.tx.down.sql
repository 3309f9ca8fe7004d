-- A rest still sending would be taken for a run to everyone by the code
-- before it, mailing those already reached again.
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM runs WHERE rest_of IS NOT NULL AND finished_at IS NULL) THEN
        RAISE EXCEPTION 'a "Send to the rest" run is still sending: wait until it ends before rolling back';
    END IF;
END
$$;
DROP INDEX IF EXISTS runs_rest_of_idx;
DROP INDEX IF EXISTS runs_retry_of_idx;
ALTER TABLE runs DROP CONSTRAINT IF EXISTS runs_one_source;
ALTER TABLE runs DROP COLUMN IF EXISTS rest_of;
ALTER TABLE runs DROP COLUMN IF EXISTS unreached;
ALTER TABLE run_batches DROP COLUMN IF EXISTS unreached;
