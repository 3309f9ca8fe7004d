-- Where a user's clients reply to their mailings (the account page's
-- "Replies go to"): the Reply-To of every mail sent for them. Empty: none,
-- and replies go to MAIL_FROM.
ALTER TABLE users ADD COLUMN reply_to text NOT NULL DEFAULT '';
