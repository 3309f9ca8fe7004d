-- Claims left by a dead worker become what the previous version would have
-- left: attempts recorded as interrupted (it reads pending ones only).
WITH lost AS (
    INSERT INTO attempts (run_id, mailing_id, client_id, email, status, response, tries, attempted_at)
    SELECT b.run_id, r.mailing_id, c.id, x.email, 'failure', 'interrupted: outcome unknown', 1, now()
    FROM run_batches AS b JOIN runs AS r ON r.id = b.run_id
    CROSS JOIN unnest(b.claimed, b.claimed_emails) AS x(client_id, email)
    LEFT JOIN clients AS c ON c.id = x.client_id
    WHERE b.claimed <> '{}'
    ON CONFLICT (run_id, client_id) DO NOTHING
    RETURNING run_id
)
UPDATE runs SET failed = failed + l.n
FROM (SELECT run_id, count(*) AS n FROM lost GROUP BY run_id) AS l
WHERE runs.id = l.run_id;

ALTER TABLE attempts ADD FOREIGN KEY (run_id) REFERENCES runs (id) ON DELETE CASCADE;
DROP INDEX attempts_run_failures_idx;
CREATE INDEX attempts_run_status_idx ON attempts (run_id, status);
ALTER TABLE run_batches DROP COLUMN claimed_emails, DROP COLUMN claimed;
