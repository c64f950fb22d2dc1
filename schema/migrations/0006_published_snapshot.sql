-- What the consumer last wrote to KV, kept in D1 so that deciding whether to
-- republish (every batch) and whether the snapshot is stale (every cron tick)
-- needs no KV list: KV lists are slow, billed, and limited to 1,000 a day on
-- the free plan.
INSERT INTO meta (name, value) VALUES ('snapshot_published_version', 0);
INSERT INTO meta (name, value) VALUES ('snapshot_published_generated_at', 0);
