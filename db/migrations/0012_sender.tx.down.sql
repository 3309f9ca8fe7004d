DELETE FROM tokens WHERE purpose = 'confirm_reply_to';
ALTER TABLE tokens DROP CONSTRAINT tokens_purpose_check;
ALTER TABLE tokens ADD CONSTRAINT tokens_purpose_check CHECK (purpose IN ('confirm_email', 'reset_password'));
ALTER TABLE tokens DROP COLUMN IF EXISTS address;
ALTER TABLE users DROP COLUMN IF EXISTS sender_name, DROP COLUMN IF EXISTS reply_to, DROP COLUMN IF EXISTS reply_to_pending;
