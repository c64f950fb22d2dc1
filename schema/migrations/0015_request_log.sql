-- The request log (issue #23): one row per client request and one per upstream
-- attempt, folded by the consumer from the attempt events in the same
-- transaction as the rollups, so it is a projection of the log like them:
-- redelivery changes nothing (attempts are keyed by request and position, and
-- a request's row is recomputed from its attempts), and a replay rebuilds it.
-- Kept `retention.requestLogDays` (7 by default).

CREATE TABLE request_attempts (
  request_id        TEXT NOT NULL,
  attempt           INTEGER NOT NULL,
  ts                INTEGER NOT NULL,      -- when the attempt was sent
  final             INTEGER NOT NULL,
  key_id            TEXT NOT NULL,
  upstream_id       TEXT NOT NULL,
  client_key_id     TEXT NOT NULL,
  model             TEXT NOT NULL,
  upstream_model    TEXT,                  -- the name sent upstream where an alias changed it
  endpoint          TEXT NOT NULL,
  stream            INTEGER NOT NULL,
  status            INTEGER NOT NULL,
  outcome           TEXT NOT NULL,
  latency_ms        REAL NOT NULL,
  ttfb_ms           REAL,
  prompt_tokens     INTEGER NOT NULL,
  completion_tokens INTEGER NOT NULL,
  total_tokens      INTEGER NOT NULL,
  cached_tokens     INTEGER NOT NULL,
  reasoning_tokens  INTEGER NOT NULL,
  usage_source      TEXT NOT NULL,
  cost_micros       INTEGER NOT NULL,
  unpriced          INTEGER NOT NULL,
  error             TEXT,                  -- the upstream's refusal, redacted by the gateway
  user_agent        TEXT,
  PRIMARY KEY (request_id, attempt)
) WITHOUT ROWID;
CREATE INDEX request_attempts_by_key ON request_attempts (key_id, ts);
CREATE INDEX request_attempts_by_time ON request_attempts (ts);

CREATE TABLE request_log (
  request_id        TEXT PRIMARY KEY,      -- x-keypool-request-id, a UUIDv7
  started_at        INTEGER NOT NULL,      -- the first attempt's start
  client_key_id     TEXT NOT NULL,
  model             TEXT NOT NULL,
  upstream_model    TEXT,
  endpoint          TEXT NOT NULL,
  stream            INTEGER NOT NULL,
  key_id            TEXT NOT NULL,         -- the final attempt's key and upstream
  upstream_id       TEXT NOT NULL,
  status            INTEGER NOT NULL,
  outcome           TEXT NOT NULL,
  attempts          INTEGER NOT NULL,
  latency_ms        REAL NOT NULL,         -- from the first attempt's start to the final one's end
  ttfb_ms           REAL,                  -- from the first attempt's start to the final answer's first byte
  prompt_tokens     INTEGER NOT NULL,
  completion_tokens INTEGER NOT NULL,
  total_tokens      INTEGER NOT NULL,
  cached_tokens     INTEGER NOT NULL,
  reasoning_tokens  INTEGER NOT NULL,
  usage_source      TEXT NOT NULL,
  cost_micros       INTEGER NOT NULL,      -- every attempt's
  unpriced          INTEGER NOT NULL,
  user_agent        TEXT
);
CREATE INDEX request_log_by_time ON request_log (started_at);
CREATE INDEX request_log_by_client ON request_log (client_key_id, started_at);
CREATE INDEX request_log_by_model ON request_log (model, started_at);
CREATE INDEX request_log_by_outcome ON request_log (outcome, started_at);
