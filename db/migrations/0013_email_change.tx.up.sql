-- A user moves their account to another address from the account page:
-- the new address becomes the account's once its inbox opens the link
-- mailed to it (tokens.address names it).
ALTER TABLE tokens DROP CONSTRAINT tokens_purpose_check;
ALTER TABLE tokens ADD CONSTRAINT tokens_purpose_check
  CHECK (purpose IN ('confirm_email', 'reset_password', 'confirm_reply_to', 'change_email'));
