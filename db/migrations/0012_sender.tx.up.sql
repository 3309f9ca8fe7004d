-- How a user's mailings present them, set on their account page: the name
-- their mail goes from (with MAIL_FROM's address; empty: MAIL_FROM's name),
-- and where their clients reply (the Reply-To of every mail sent for them;
-- empty: none, and replies go to MAIL_FROM).
ALTER TABLE users
  ADD COLUMN sender_name text NOT NULL DEFAULT '',
  ADD COLUMN reply_to text NOT NULL DEFAULT '';
