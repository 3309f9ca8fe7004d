-- An address that unsubscribed stays unsubscribed for its owner: a client
-- deleted and added again, by hand or by an import, finds the mark here
-- and is added unsubscribed. Only the recipient's own "Subscribe again"
-- removes it. Emails are kept lower-cased, as clients are unique.
CREATE TABLE unsubscribes (
    owner_id        bigint      NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    email           text        NOT NULL CHECK (email = lower(email)),
    unsubscribed_at timestamptz NOT NULL,
    PRIMARY KEY (owner_id, email)
);

INSERT INTO unsubscribes (owner_id, email, unsubscribed_at)
SELECT owner_id, lower(email), unsubscribed_at FROM clients WHERE unsubscribed_at IS NOT NULL
ON CONFLICT DO NOTHING;

-- Every unsubscribed client's address is marked, however the client came
-- to be so (its link, an import, an address changed since): one rule for
-- every statement that writes clients. The first mark of an address is
-- kept.
CREATE FUNCTION unsubscribes_mark() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO unsubscribes (owner_id, email, unsubscribed_at)
    VALUES (NEW.owner_id, lower(NEW.email), NEW.unsubscribed_at)
    ON CONFLICT DO NOTHING;
    RETURN NULL;
END
$$;

CREATE TRIGGER clients_unsubscribes_mark AFTER INSERT OR UPDATE OF unsubscribed_at, email ON clients
    FOR EACH ROW WHEN (NEW.unsubscribed_at IS NOT NULL) EXECUTE FUNCTION unsubscribes_mark();
