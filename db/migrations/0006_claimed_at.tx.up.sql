-- When a batch claimed the recipients it is sending to: a claim a dead
-- worker left is recorded as interrupted at that time, when the sends
-- were made, not when a worker finds it (which may be hours later, in
-- another quarter hour of the statistics).
ALTER TABLE run_batches ADD COLUMN claimed_at timestamptz;
