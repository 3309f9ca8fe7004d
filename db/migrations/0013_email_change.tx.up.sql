-- A user moves their account to another address from the account page:
-- the new address becomes the account's once its inbox opens the link
-- mailed to it (tokens.address names it); the old address is mailed a
-- link that moves the account back (revert_email), for a week.
ALTER TABLE tokens DROP CONSTRAINT tokens_purpose_check;
ALTER TABLE tokens ADD CONSTRAINT tokens_purpose_check
  CHECK (purpose IN ('confirm_email', 'reset_password', 'confirm_reply_to', 'change_email', 'revert_email'));

-- When the password was last set or changed (NULL: when the account was
-- made, or before this was kept): a move to another address takes a
-- password a day old, so that a stolen session that sets or changes one
-- cannot move the account away before its owner is told.
ALTER TABLE users ADD COLUMN password_changed_at timestamptz;
