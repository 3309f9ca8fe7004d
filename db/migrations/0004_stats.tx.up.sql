-- Statistics: attempts counted per mailing and quarter of an hour, kept
-- up to date by triggers on attempts, so that figures and charts sum a few
-- thousand rows instead of counting millions of attempts. Quarter hours
-- make every time zone's days exact (all UTC offsets are multiples of 15
-- minutes).
CREATE TABLE attempt_counts (
    mailing_id bigint      NOT NULL REFERENCES mailings (id) ON DELETE CASCADE,
    owner_id   bigint      NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    bucket     timestamptz NOT NULL, -- attempted_at rounded down to 15 minutes
    succeeded  integer     NOT NULL DEFAULT 0,
    failed     integer     NOT NULL DEFAULT 0,
    PRIMARY KEY (mailing_id, bucket)
);
-- a user's figures and chart; the whole site's (managers) by time
CREATE INDEX attempt_counts_owner_idx ON attempt_counts (owner_id, bucket) INCLUDE (succeeded, failed);
CREATE INDEX attempt_counts_bucket_idx ON attempt_counts (bucket) INCLUDE (succeeded, failed);

-- attempt_counts_apply adds the completed attempts of new_rows and takes away
-- those of old_rows (either may be empty), grouped by mailing and bucket.
-- Attempts are deleted only with their mailing (whose counts go with it)
-- or while pending (never counted), so there is no delete trigger.
CREATE FUNCTION attempt_counts_apply() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO attempt_counts AS ac (mailing_id, owner_id, bucket, succeeded, failed)
        SELECT d.mailing_id, m.owner_id, date_bin('15 minutes', d.attempted_at, 'epoch'),
               count(*) FILTER (WHERE d.status = 'success'), count(*) FILTER (WHERE d.status = 'failure')
        FROM new_rows AS d JOIN mailings AS m ON m.id = d.mailing_id
        WHERE d.status <> 'pending'
        GROUP BY 1, 2, 3
        ON CONFLICT (mailing_id, bucket) DO UPDATE
            SET succeeded = ac.succeeded + excluded.succeeded, failed = ac.failed + excluded.failed;
    ELSE
        INSERT INTO attempt_counts AS ac (mailing_id, owner_id, bucket, succeeded, failed)
        SELECT d.mailing_id, m.owner_id, date_bin('15 minutes', d.attempted_at, 'epoch'),
               coalesce(sum(d.sign) FILTER (WHERE d.status = 'success'), 0),
               coalesce(sum(d.sign) FILTER (WHERE d.status = 'failure'), 0)
        FROM (
            SELECT mailing_id, attempted_at, status, 1 AS sign FROM new_rows WHERE status <> 'pending'
            UNION ALL
            SELECT mailing_id, attempted_at, status, -1 FROM old_rows WHERE status <> 'pending'
        ) AS d JOIN mailings AS m ON m.id = d.mailing_id
        GROUP BY 1, 2, 3
        HAVING sum(d.sign) FILTER (WHERE d.status = 'success') <> 0 OR sum(d.sign) FILTER (WHERE d.status = 'failure') <> 0
        ON CONFLICT (mailing_id, bucket) DO UPDATE
            SET succeeded = ac.succeeded + excluded.succeeded, failed = ac.failed + excluded.failed;
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER attempts_count_insert AFTER INSERT ON attempts
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION attempt_counts_apply();
CREATE TRIGGER attempts_count_update AFTER UPDATE ON attempts
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION attempt_counts_apply();

INSERT INTO attempt_counts (mailing_id, owner_id, bucket, succeeded, failed)
SELECT a.mailing_id, m.owner_id, date_bin('15 minutes', a.attempted_at, 'epoch'),
       count(*) FILTER (WHERE a.status = 'success'), count(*) FILTER (WHERE a.status = 'failure')
FROM attempts AS a JOIN mailings AS m ON m.id = a.mailing_id
WHERE a.status <> 'pending'
GROUP BY 1, 2, 3;

-- The few unsubscribed and bounced clients of an owner, for the figures.
CREATE INDEX clients_unsubscribed_idx ON clients (owner_id) WHERE unsubscribed_at IS NOT NULL;
CREATE INDEX clients_bounced_idx ON clients (owner_id) WHERE bounced_at IS NOT NULL;
