ALTER TABLE attempts ADD FOREIGN KEY (run_id) REFERENCES runs (id) ON DELETE CASCADE;
DROP INDEX attempts_run_failures_idx;
CREATE INDEX attempts_run_status_idx ON attempts (run_id, status);
ALTER TABLE run_batches DROP COLUMN claimed_emails, DROP COLUMN claimed;
