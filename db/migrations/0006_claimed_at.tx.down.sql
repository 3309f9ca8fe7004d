ALTER TABLE run_batches DROP COLUMN claimed_at;
