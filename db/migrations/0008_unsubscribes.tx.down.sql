-- The clients keep their marks; only those of deleted clients are lost.
DROP TABLE IF EXISTS unsubscribes;
