-- Keypool's D1 schema. Configuration is written by the admin API; health, rollups,
-- the dedupe window and the audit log are projections written by the consumer.
-- Never edit a migration that has been applied anywhere: add a new numbered file.

CREATE TABLE upstreams (
  id          TEXT PRIMARY KEY,
  name        TEXT NOT NULL,
  base_url    TEXT NOT NULL,
  kind        TEXT NOT NULL DEFAULT 'custom',
  models      TEXT NOT NULL DEFAULT '[]',      -- JSON array; empty = any model
  enabled     INTEGER NOT NULL DEFAULT 1,
  created_at  INTEGER NOT NULL,
  updated_at  INTEGER NOT NULL
);

CREATE TABLE keys (
  id           TEXT PRIMARY KEY,
  upstream_id  TEXT NOT NULL REFERENCES upstreams(id),
  secret_enc   TEXT NOT NULL,                  -- AES-GCM ciphertext, never plaintext
  fingerprint  TEXT NOT NULL,                  -- SHA-256 of the key, to refuse duplicates
  masked       TEXT NOT NULL,                  -- e.g. sk-ab…wxyz
  weight       REAL NOT NULL DEFAULT 1,
  models       TEXT NOT NULL DEFAULT '[]',
  enabled      INTEGER NOT NULL DEFAULT 1,
  note         TEXT NOT NULL DEFAULT '',
  created_at   INTEGER NOT NULL,
  updated_at   INTEGER NOT NULL
);
CREATE UNIQUE INDEX keys_fingerprint ON keys(upstream_id, fingerprint);
CREATE INDEX keys_upstream ON keys(upstream_id);

CREATE TABLE client_keys (
  id          TEXT PRIMARY KEY,
  name        TEXT NOT NULL,
  hash        TEXT NOT NULL UNIQUE,            -- SHA-256 hex of the client key
  masked      TEXT NOT NULL,
  models      TEXT NOT NULL DEFAULT '[]',
  rpm_limit   INTEGER,
  tpm_limit   INTEGER,
  expires_at  INTEGER,
  enabled     INTEGER NOT NULL DEFAULT 1,
  created_at  INTEGER NOT NULL,
  updated_at  INTEGER NOT NULL
);

CREATE TABLE settings (
  id          INTEGER PRIMARY KEY CHECK (id = 1),
  value       TEXT NOT NULL,                   -- JSON, parsed by schema/settings.ts
  updated_at  INTEGER NOT NULL
);

-- Projections (consumer only) ------------------------------------------------

CREATE TABLE key_health (
  key_id                TEXT PRIMARY KEY,
  state                 TEXT NOT NULL DEFAULT 'active',
  cooling_until         INTEGER,
  success_rate          REAL NOT NULL DEFAULT 1,
  consecutive_failures  INTEGER NOT NULL DEFAULT 0,
  last_error            TEXT,
  last_used_at          INTEGER,
  balance               REAL,
  balance_checked_at    INTEGER,
  updated_at            INTEGER NOT NULL
);

-- One table per granularity, same columns. `bucket` is the epoch ms at which the
-- bucket starts (for days: local midnight in the configured time zone).
CREATE TABLE rollup_minute (
  bucket             INTEGER NOT NULL,
  key_id             TEXT NOT NULL,
  model              TEXT NOT NULL,
  client_key_id      TEXT NOT NULL,
  requests           INTEGER NOT NULL DEFAULT 0,  -- client requests (final attempts)
  attempts           INTEGER NOT NULL DEFAULT 0,
  successes          INTEGER NOT NULL DEFAULT 0,
  rate_limited       INTEGER NOT NULL DEFAULT 0,
  auth_failed        INTEGER NOT NULL DEFAULT 0,
  no_balance         INTEGER NOT NULL DEFAULT 0,
  upstream_error     INTEGER NOT NULL DEFAULT 0,
  network_error      INTEGER NOT NULL DEFAULT 0,
  client_error       INTEGER NOT NULL DEFAULT 0,
  aborted            INTEGER NOT NULL DEFAULT 0,
  prompt_tokens      INTEGER NOT NULL DEFAULT 0,
  completion_tokens  INTEGER NOT NULL DEFAULT 0,
  total_tokens       INTEGER NOT NULL DEFAULT 0,
  estimated_tokens   INTEGER NOT NULL DEFAULT 0,
  latency_ms_sum     REAL NOT NULL DEFAULT 0,
  latency_ms_max     REAL NOT NULL DEFAULT 0,
  ttfb_ms_sum        REAL NOT NULL DEFAULT 0,
  ttfb_ms_max        REAL NOT NULL DEFAULT 0,
  ttfb_count         INTEGER NOT NULL DEFAULT 0,
  PRIMARY KEY (bucket, key_id, model, client_key_id)
) WITHOUT ROWID;

CREATE TABLE rollup_hour (
  bucket             INTEGER NOT NULL,
  key_id             TEXT NOT NULL,
  model              TEXT NOT NULL,
  client_key_id      TEXT NOT NULL,
  requests           INTEGER NOT NULL DEFAULT 0,
  attempts           INTEGER NOT NULL DEFAULT 0,
  successes          INTEGER NOT NULL DEFAULT 0,
  rate_limited       INTEGER NOT NULL DEFAULT 0,
  auth_failed        INTEGER NOT NULL DEFAULT 0,
  no_balance         INTEGER NOT NULL DEFAULT 0,
  upstream_error     INTEGER NOT NULL DEFAULT 0,
  network_error      INTEGER NOT NULL DEFAULT 0,
  client_error       INTEGER NOT NULL DEFAULT 0,
  aborted            INTEGER NOT NULL DEFAULT 0,
  prompt_tokens      INTEGER NOT NULL DEFAULT 0,
  completion_tokens  INTEGER NOT NULL DEFAULT 0,
  total_tokens       INTEGER NOT NULL DEFAULT 0,
  estimated_tokens   INTEGER NOT NULL DEFAULT 0,
  latency_ms_sum     REAL NOT NULL DEFAULT 0,
  latency_ms_max     REAL NOT NULL DEFAULT 0,
  ttfb_ms_sum        REAL NOT NULL DEFAULT 0,
  ttfb_ms_max        REAL NOT NULL DEFAULT 0,
  ttfb_count         INTEGER NOT NULL DEFAULT 0,
  PRIMARY KEY (bucket, key_id, model, client_key_id)
) WITHOUT ROWID;

CREATE TABLE rollup_day (
  bucket             INTEGER NOT NULL,
  key_id             TEXT NOT NULL,
  model              TEXT NOT NULL,
  client_key_id      TEXT NOT NULL,
  requests           INTEGER NOT NULL DEFAULT 0,
  attempts           INTEGER NOT NULL DEFAULT 0,
  successes          INTEGER NOT NULL DEFAULT 0,
  rate_limited       INTEGER NOT NULL DEFAULT 0,
  auth_failed        INTEGER NOT NULL DEFAULT 0,
  no_balance         INTEGER NOT NULL DEFAULT 0,
  upstream_error     INTEGER NOT NULL DEFAULT 0,
  network_error      INTEGER NOT NULL DEFAULT 0,
  client_error       INTEGER NOT NULL DEFAULT 0,
  aborted            INTEGER NOT NULL DEFAULT 0,
  prompt_tokens      INTEGER NOT NULL DEFAULT 0,
  completion_tokens  INTEGER NOT NULL DEFAULT 0,
  total_tokens       INTEGER NOT NULL DEFAULT 0,
  estimated_tokens   INTEGER NOT NULL DEFAULT 0,
  latency_ms_sum     REAL NOT NULL DEFAULT 0,
  latency_ms_max     REAL NOT NULL DEFAULT 0,
  ttfb_ms_sum        REAL NOT NULL DEFAULT 0,
  ttfb_ms_max        REAL NOT NULL DEFAULT 0,
  ttfb_count         INTEGER NOT NULL DEFAULT 0,
  PRIMARY KEY (bucket, key_id, model, client_key_id)
) WITHOUT ROWID;

CREATE INDEX rollup_minute_key ON rollup_minute(key_id, bucket);
CREATE INDEX rollup_hour_key ON rollup_hour(key_id, bucket);
CREATE INDEX rollup_day_key ON rollup_day(key_id, bucket);

-- Event ids already folded, kept longer than the queue's retry horizon.
CREATE TABLE seen_events (
  id  TEXT PRIMARY KEY,
  ts  INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX seen_events_ts ON seen_events(ts);

-- Admin events as folded by the consumer: the audit trail.
CREATE TABLE audit_log (
  id      TEXT PRIMARY KEY,
  ts      INTEGER NOT NULL,
  actor   TEXT NOT NULL,
  action  TEXT NOT NULL,
  target  TEXT,
  detail  TEXT
);
CREATE INDEX audit_log_ts ON audit_log(ts);

-- Counters owned by the consumer (snapshot version).
CREATE TABLE meta (
  name   TEXT PRIMARY KEY,
  value  INTEGER NOT NULL
);
INSERT INTO meta (name, value) VALUES ('snapshot_version', 0);
