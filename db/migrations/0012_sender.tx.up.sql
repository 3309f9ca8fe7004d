-- How a user's mailings present them, set on their account page: the name
-- their mail goes from (with MAIL_FROM's address; empty: MAIL_FROM's name),
-- and where their clients reply (the Reply-To of every mail sent for them;
-- empty: none, and replies go to MAIL_FROM). A reply address other than the
-- account's own is used once its inbox has confirmed it by a mailed link:
-- until then it waits in reply_to_pending.
ALTER TABLE users
  ADD COLUMN sender_name text NOT NULL DEFAULT '',
  ADD COLUMN reply_to text NOT NULL DEFAULT '',
  ADD COLUMN reply_to_pending text NOT NULL DEFAULT '';

-- A reply address's link names the address it confirms: only while that
-- address still waits does the link make it the reply address.
ALTER TABLE tokens ADD COLUMN address text;
ALTER TABLE tokens DROP CONSTRAINT tokens_purpose_check;
ALTER TABLE tokens ADD CONSTRAINT tokens_purpose_check
  CHECK (purpose IN ('confirm_email', 'reset_password', 'confirm_reply_to'));
