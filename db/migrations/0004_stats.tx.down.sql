DROP INDEX clients_bounced_idx;
DROP INDEX clients_unsubscribed_idx;
DROP TRIGGER attempts_count_update ON attempts;
DROP TRIGGER attempts_count_insert ON attempts;
DROP FUNCTION attempt_counts_apply();
DROP TABLE attempt_counts;
