-- Alerts and Prometheus metrics (issue #24).

-- Where alerts go. The URL is a secret (a Slack or Discord webhook URL is its own
-- credential): AES-GCM under ALERT_ENCRYPTION_KEY, with a masked form to show. A
-- generic webhook's signing secret is sealed the same way.
CREATE TABLE alert_destinations (
  id          TEXT PRIMARY KEY,
  name        TEXT NOT NULL,
  kind        TEXT NOT NULL,                   -- webhook | slack | discord
  url_enc     TEXT NOT NULL,
  url_masked  TEXT NOT NULL,
  secret_enc  TEXT,                            -- webhooks only
  kinds       TEXT NOT NULL DEFAULT '[]',      -- JSON array of alert kinds; empty = all
  enabled     INTEGER NOT NULL DEFAULT 1,
  created_at  INTEGER NOT NULL,
  updated_at  INTEGER NOT NULL
);

-- Every alert raised: one per state change of a kind (grouped: a thousand keys
-- dying in one batch are one alert), held until `not_before` by its kind's
-- cool-down.
CREATE TABLE alerts (
  id          TEXT PRIMARY KEY,
  kind        TEXT NOT NULL,
  status      TEXT NOT NULL,                   -- firing | resolved
  title       TEXT NOT NULL,
  count       INTEGER NOT NULL,
  items       TEXT NOT NULL,                   -- JSON, the first 100 things it is about
  created_at  INTEGER NOT NULL,
  not_before  INTEGER
);
CREATE INDEX alerts_by_time ON alerts (created_at);
CREATE INDEX alerts_by_kind ON alerts (kind, created_at);

-- Each alert's delivery to each destination, retried with backoff until sent or failed.
CREATE TABLE alert_deliveries (
  alert_id        TEXT NOT NULL,
  destination_id  TEXT NOT NULL,
  status          TEXT NOT NULL DEFAULT 'pending',  -- pending | sent | failed
  attempts        INTEGER NOT NULL DEFAULT 0,
  next_at         INTEGER,
  last_status     INTEGER,
  last_error      TEXT,
  updated_at      INTEGER NOT NULL,
  PRIMARY KEY (alert_id, destination_id)
) WITHOUT ROWID;
CREATE INDEX alert_deliveries_due ON alert_deliveries (status, next_at);

-- The conditions last alerted, one row per thing not in its normal state (a dead
-- key, a firing pool share, a client key at 80 % of a quota): an evaluation raises
-- an alert for each difference with what it finds, and rewrites these rows, only
-- if no other evaluation of its group committed in between (meta alert_seq:*).
CREATE TABLE alert_state (
  subject  TEXT PRIMARY KEY,
  grp      TEXT NOT NULL,
  value    TEXT NOT NULL,
  since    INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX alert_state_by_group ON alert_state (grp);

INSERT INTO meta (name, value) VALUES ('alert_seq:pool', 0), ('alert_seq:clients', 0), ('alert_seq:consumer', 0), ('alert_seq:scheduler', 0);
-- When the consumer's next wake-up for due deliveries (a delayed control message) comes: one pending at a time.
INSERT INTO meta (name, value) VALUES ('alert_wakeup_at', 0);

-- The scrape token of /metrics: its SHA-256 only.
CREATE TABLE metrics_access (
  id          INTEGER PRIMARY KEY CHECK (id = 1),
  token_hash  TEXT NOT NULL,
  created_at  INTEGER NOT NULL
);

-- Prometheus counters: every attempt since `metrics_counted_since`, by upstream and
-- model, with latency and time-to-first-byte histograms (bucket upper bounds in
-- storage/metrics.ts). A projection of the event log, folded in the same
-- transaction as the rollups; never pruned (upstreams × models rows).
CREATE TABLE metric_total (
  upstream_id        TEXT NOT NULL,
  model              TEXT NOT NULL,
  requests           INTEGER NOT NULL DEFAULT 0,
  attempts           INTEGER NOT NULL DEFAULT 0,
  ok                 INTEGER NOT NULL DEFAULT 0,
  rate_limited       INTEGER NOT NULL DEFAULT 0,
  auth_failed        INTEGER NOT NULL DEFAULT 0,
  no_balance         INTEGER NOT NULL DEFAULT 0,
  upstream_error     INTEGER NOT NULL DEFAULT 0,
  network_error      INTEGER NOT NULL DEFAULT 0,
  client_error       INTEGER NOT NULL DEFAULT 0,
  aborted            INTEGER NOT NULL DEFAULT 0,
  prompt_tokens      INTEGER NOT NULL DEFAULT 0,
  completion_tokens  INTEGER NOT NULL DEFAULT 0,
  cost_micros        INTEGER NOT NULL DEFAULT 0,
  unpriced           INTEGER NOT NULL DEFAULT 0,
  latency_ms_sum     REAL NOT NULL DEFAULT 0,
  latency_buckets    TEXT NOT NULL DEFAULT '[]',  -- JSON counts per bucket (not cumulative)
  ttfb_ms_sum        REAL NOT NULL DEFAULT 0,
  ttfb_count         INTEGER NOT NULL DEFAULT 0,
  ttfb_buckets       TEXT NOT NULL DEFAULT '[]',
  PRIMARY KEY (upstream_id, model)
) WITHOUT ROWID;

-- Counted from this moment on: a database with rollups before this migration
-- starts its counters here, and a replay leaves earlier attempts out the same way.
INSERT INTO meta (name, value) VALUES (
  'metrics_counted_since',
  CASE WHEN EXISTS (SELECT 1 FROM rollup_day) THEN CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER) ELSE 0 END
);
-- The newest event any batch folded (consumer lag), and dead letters archived so far.
INSERT INTO meta (name, value) VALUES ('newest_folded_ts', 0), ('dead_letters_total', 0);
