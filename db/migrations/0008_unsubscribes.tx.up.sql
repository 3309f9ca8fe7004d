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
