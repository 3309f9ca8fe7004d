DROP INDEX IF EXISTS attempts_run_client_idx;
DROP TABLE IF EXISTS run_batches;
ALTER TABLE runs DROP COLUMN IF EXISTS retry_of;
