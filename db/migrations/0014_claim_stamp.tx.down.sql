ALTER TABLE run_batches DROP COLUMN claim_stamp;
