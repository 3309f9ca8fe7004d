-- The version of a mailing's settings as its owner last saved them: an
-- edit form carries the one it was opened on, and a save from a form
-- opened before another save is refused instead of undoing it. Not
-- updated_at, which runs, the scheduler and the switch also move.
ALTER TABLE mailings ADD COLUMN edited_at timestamptz NOT NULL DEFAULT now();
UPDATE mailings SET edited_at = updated_at;
