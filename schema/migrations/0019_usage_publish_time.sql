-- How long the last publish of the pool's usage took (ms, from its claim to its
-- KV write): a pool whose publish takes long publishes less often, so the
-- publish never holds D1 for more than a share of the time
-- (stats-consumer/storage/usage-store.ts).
INSERT INTO meta (name, value) VALUES ('usage_publish_ms', 0);
