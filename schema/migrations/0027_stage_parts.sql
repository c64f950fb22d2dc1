-- Which parts of the fold a staged row feeds (issue #26; stats-consumer/logic/fold-shards.ts):
-- 1, its key's (the key rows, the upstream and pool rows, the Prometheus counters);
-- 2, its client key's (the client rows and the client's day); 3, both. With one
-- fold database every row is 3. With several, an attempt's client part is folded
-- in its client key's database, not in its key's: every database held a row for
-- nearly every client key and model in every bucket before, so the client rows
-- grew with the number of databases.
ALTER TABLE ingest_stage ADD COLUMN part INTEGER NOT NULL DEFAULT 3;
