-- The key of the form a mailing or a message was created from (a form
-- gets one when it is opened). The same form sent twice (a double click
-- without JavaScript, a post sent again after its answer was lost) finds
-- what it created the first time instead of creating it again: a mailing
-- created twice would mail its recipients twice. Not unique: a form sent
-- again with other settings (its page restored by Back and changed)
-- creates another, with the same key, so that it too is created once.
ALTER TABLE mailings ADD COLUMN form_key text CHECK (length(form_key) <= 64);
ALTER TABLE messages ADD COLUMN form_key text CHECK (length(form_key) <= 64);
CREATE INDEX mailings_form_key ON mailings (owner_id, form_key) WHERE form_key IS NOT NULL;
CREATE INDEX messages_form_key ON messages (owner_id, form_key) WHERE form_key IS NOT NULL;
