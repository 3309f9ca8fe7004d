ALTER TABLE users DROP COLUMN password_changed_at;
DELETE FROM tokens WHERE purpose IN ('change_email', 'revert_email');
ALTER TABLE tokens DROP CONSTRAINT tokens_purpose_check;
ALTER TABLE tokens ADD CONSTRAINT tokens_purpose_check
  CHECK (purpose IN ('confirm_email', 'reset_password', 'confirm_reply_to'));
