-- Substring search over clients (email, name, comment) and messages
-- (subject) with trigram indexes, so that ?q= stays fast on large lists.
-- pg_trgm ships with PostgreSQL and is a trusted extension: the database
-- owner may create it.
CREATE EXTENSION IF NOT EXISTS pg_trgm;

CREATE INDEX clients_search_idx ON clients
    USING gin (lower(email || ' ' || full_name || ' ' || comment) gin_trgm_ops);
CREATE INDEX messages_search_idx ON messages USING gin (lower(subject) gin_trgm_ops);
CREATE INDEX users_search_idx ON users USING gin (lower(email || ' ' || full_name) gin_trgm_ops);

-- The attempt log filtered by status, paged newest first.
CREATE INDEX attempts_mailing_status_idx ON attempts (mailing_id, status, id);
