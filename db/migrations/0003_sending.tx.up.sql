-- The send pipeline: a run is split into batches (client-id ranges of the
-- recipients) that several workers process at once; a batch is done once.
ALTER TABLE runs ADD COLUMN retry_of bigint REFERENCES runs (id) ON DELETE SET NULL;

CREATE TABLE run_batches (
    run_id  bigint      NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    seq     integer     NOT NULL CHECK (seq >= 0),
    from_id bigint      NOT NULL,          -- exclusive lower bound of client ids
    to_id   bigint,                        -- inclusive upper bound; NULL = open
    done_at timestamptz,
    skipped integer     NOT NULL DEFAULT 0 CHECK (skipped >= 0), -- not sent: unsubscribed, bounced, window closed
    PRIMARY KEY (run_id, seq)
);

-- Runs that still send, for the reconciler and the progress bar.
CREATE INDEX run_batches_open_idx ON run_batches (run_id) WHERE done_at IS NULL;

-- (Attempts of a run by client, for resuming a batch, use the unique
-- index of (run_id, client_id) from the first migration.)
