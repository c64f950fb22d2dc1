-- Prices, spend and client quotas (issue #22).
--
-- Prices are kept with their history: a change adds a row in force from its
-- moment on (a removal too), so an attempt is priced by the row in force at its
-- time however late it is folded, and a replay prices it the same. Money is in
-- integer micro-units of the pool's currency, prices per million tokens.

CREATE TABLE prices (
  id              TEXT PRIMARY KEY,
  model           TEXT NOT NULL,
  upstream_id     TEXT NOT NULL DEFAULT '',   -- '' = any upstream without its own price
  input           INTEGER,
  cached_input    INTEGER,
  output          INTEGER,
  per_request     INTEGER,
  source          TEXT NOT NULL DEFAULT '',
  effective_from  INTEGER NOT NULL,
  removed         INTEGER NOT NULL DEFAULT 0,
  created_at      INTEGER NOT NULL
);
CREATE INDEX prices_by_model ON prices (model, upstream_id, effective_from);

-- Each rollup row gains what its attempts cost (micro-units), how many of them
-- had usage but no price (their cost is unknown), and when the latest of them
-- was sent (what a published count of a client's usage holds).
ALTER TABLE rollup_minute ADD COLUMN cost_micros INTEGER NOT NULL DEFAULT 0;
ALTER TABLE rollup_minute ADD COLUMN unpriced INTEGER NOT NULL DEFAULT 0;
ALTER TABLE rollup_minute ADD COLUMN last_at INTEGER NOT NULL DEFAULT 0;
ALTER TABLE rollup_hour ADD COLUMN cost_micros INTEGER NOT NULL DEFAULT 0;
ALTER TABLE rollup_hour ADD COLUMN unpriced INTEGER NOT NULL DEFAULT 0;
ALTER TABLE rollup_hour ADD COLUMN last_at INTEGER NOT NULL DEFAULT 0;
ALTER TABLE rollup_day ADD COLUMN cost_micros INTEGER NOT NULL DEFAULT 0;
ALTER TABLE rollup_day ADD COLUMN unpriced INTEGER NOT NULL DEFAULT 0;
ALTER TABLE rollup_day ADD COLUMN last_at INTEGER NOT NULL DEFAULT 0;
ALTER TABLE rollup_pool_hour ADD COLUMN cost_micros INTEGER NOT NULL DEFAULT 0;
ALTER TABLE rollup_pool_hour ADD COLUMN unpriced INTEGER NOT NULL DEFAULT 0;
ALTER TABLE rollup_pool_hour ADD COLUMN last_at INTEGER NOT NULL DEFAULT 0;

-- The consumer's scratch table (empty between transactions) carries the same.
ALTER TABLE ingest_stage ADD COLUMN cost INTEGER NOT NULL DEFAULT 0;
ALTER TABLE ingest_stage ADD COLUMN unpriced INTEGER NOT NULL DEFAULT 0;
ALTER TABLE ingest_stage ADD COLUMN la INTEGER NOT NULL DEFAULT 0;

-- Client keys' quotas beside rpm_limit and tpm_limit: requests and tokens a day
-- (the pool's day, in its time zone), tokens a month, and budgets a day and a
-- month in micro-units. NULL: no such limit.
ALTER TABLE client_keys ADD COLUMN rpd_limit INTEGER;
ALTER TABLE client_keys ADD COLUMN tpd_limit INTEGER;
ALTER TABLE client_keys ADD COLUMN monthly_token_limit INTEGER;
ALTER TABLE client_keys ADD COLUMN daily_budget_micros INTEGER;
ALTER TABLE client_keys ADD COLUMN monthly_budget_micros INTEGER;

-- Attempts are priced, and their time kept in `last_at`, from this moment on:
-- rows folded before this migration carry neither, and a replay of the log
-- leaves the attempts before it the same way, so it still rebuilds them exactly.
-- A fresh database has nothing before it (0).
INSERT INTO meta (name, value) VALUES (
  'spend_counted_since',
  CASE WHEN EXISTS (SELECT 1 FROM rollup_day) THEN CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER) ELSE 0 END
);

-- Each client key's day: what its quotas are counted against (a month is at
-- most 31 rows), folded from the same attempts as rollup_day in the same
-- transaction. Filled from rollup_day for the days before.
CREATE TABLE rollup_client_day (
  bucket         INTEGER NOT NULL,
  client_key_id  TEXT NOT NULL,
  requests       INTEGER NOT NULL DEFAULT 0,
  total_tokens   INTEGER NOT NULL DEFAULT 0,
  cost_micros    INTEGER NOT NULL DEFAULT 0,
  unpriced       INTEGER NOT NULL DEFAULT 0,
  last_at        INTEGER NOT NULL DEFAULT 0,
  PRIMARY KEY (client_key_id, bucket)
) WITHOUT ROWID;

INSERT INTO rollup_client_day (bucket, client_key_id, requests, total_tokens)
  SELECT bucket, client_key_id, SUM(requests), SUM(total_tokens) FROM rollup_day GROUP BY bucket, client_key_id;

-- When the consumer last asked the queue to bring a usage republish (a batch
-- that came within a second of the last publish leaves its counts unpublished
-- until then; a control message delivered a second later publishes them even
-- when no more traffic comes).
INSERT INTO meta (name, value) VALUES ('usage_refresh_at', 0);
