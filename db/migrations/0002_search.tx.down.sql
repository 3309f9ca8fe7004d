DROP INDEX IF EXISTS attempts_mailing_status_idx;
DROP INDEX IF EXISTS users_search_idx;
DROP INDEX IF EXISTS messages_search_idx;
DROP INDEX IF EXISTS clients_search_idx;
-- pg_trgm stays: other databases objects may use it, and keeping it is harmless.
