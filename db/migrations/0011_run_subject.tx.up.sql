-- The subject a run sent, as its message read when the run started: a
-- message edited since (for the mailing's next sends) no longer rewrites
-- what a client's mail history says was sent. Runs from before it have
-- none, and show their message's subject as it reads now.
ALTER TABLE runs ADD COLUMN subject text;
