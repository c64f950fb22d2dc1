-- The request log's rows keyed by their request id alone (issue #26).
--
-- request_log was a rowid table with a text primary key: a request's row was
-- written to the table and to the primary key's own index, beside its four
-- indexes — six rows D1 bills a kept request, where a table without rowids
-- is its primary key's tree, five. Same columns, same indexes; its rows are
-- copied (retention.requestLogDays of requests: try it on a copy of a large
-- database first).
CREATE TABLE request_log_by_id (
  request_id        TEXT NOT NULL PRIMARY KEY, -- x-keypool-request-id, a UUIDv7
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
  user_agent        TEXT,
  client_ip         TEXT                   -- migration 0016
) WITHOUT ROWID;
INSERT INTO request_log_by_id SELECT request_id, started_at, client_key_id, model, upstream_model, endpoint, stream, key_id, upstream_id,
  status, outcome, attempts, latency_ms, ttfb_ms, prompt_tokens, completion_tokens, total_tokens, cached_tokens, reasoning_tokens,
  usage_source, cost_micros, unpriced, user_agent, client_ip FROM request_log;
DROP TABLE request_log;
ALTER TABLE request_log_by_id RENAME TO request_log;
CREATE INDEX request_log_by_time ON request_log (started_at);
CREATE INDEX request_log_by_client ON request_log (client_key_id, started_at);
CREATE INDEX request_log_by_model ON request_log (model, started_at);
CREATE INDEX request_log_by_outcome ON request_log (outcome, started_at);
