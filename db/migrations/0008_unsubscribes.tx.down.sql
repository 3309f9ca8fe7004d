-- The clients keep their marks; only those of deleted clients are lost.
DROP TRIGGER IF EXISTS clients_unsubscribes_mark ON clients;
DROP FUNCTION IF EXISTS unsubscribes_mark();
DROP TABLE IF EXISTS unsubscribes;
