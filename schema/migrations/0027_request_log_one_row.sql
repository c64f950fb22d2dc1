-- The request log, one row a request (issue #26, docs/scale.md item 33): a
-- request's final attempt lives in its `request_log` row, and
-- `request_attempts` keeps only the attempts before it (the ones retried or
-- failed over from), so a request answered at its first attempt — most of
-- them — is one row and its indexes, not two. The fold still gives the same
-- row whatever order and batches the attempts come in: `final_*` hold the
-- final attempt's own time, latency, first byte, cost and unpriced count once
-- an earlier attempt has been folded beside it, and are NULL while the row's
-- figures are the final attempt's own (storage/request-log.ts).

CREATE TABLE request_log_one (
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
  user_agent        TEXT,
  client_ip         TEXT,
  attempt           INTEGER NOT NULL,      -- the final attempt's position
  error             TEXT,                  -- the final attempt's refusal, redacted by the gateway
  final_ts          INTEGER,               -- the final attempt's own figures; NULL while they are the row's
  final_latency_ms  REAL,
  final_ttfb_ms     REAL,
  final_cost_micros INTEGER,
  final_unpriced    INTEGER
);

INSERT INTO request_log_one
SELECT r.request_id, r.started_at, r.client_key_id, r.model, r.upstream_model, r.endpoint, r.stream, r.key_id, r.upstream_id,
  r.status, r.outcome, r.attempts, r.latency_ms, r.ttfb_ms, r.prompt_tokens, r.completion_tokens, r.total_tokens, r.cached_tokens,
  r.reasoning_tokens, r.usage_source, r.cost_micros, r.unpriced, r.user_agent, r.client_ip, a.attempt, a.error,
  CASE WHEN r.attempts > 1 THEN a.ts END, CASE WHEN r.attempts > 1 THEN a.latency_ms END, CASE WHEN r.attempts > 1 THEN a.ttfb_ms END,
  CASE WHEN r.attempts > 1 THEN a.cost_micros END, CASE WHEN r.attempts > 1 THEN a.unpriced END
FROM request_log r JOIN request_attempts a ON a.request_id = r.request_id AND a.final = 1;

DELETE FROM request_attempts WHERE final = 1;
DROP TABLE request_log;
ALTER TABLE request_log_one RENAME TO request_log;

CREATE INDEX request_log_by_time ON request_log (started_at);
CREATE INDEX request_log_by_client ON request_log (client_key_id, started_at);
CREATE INDEX request_log_by_model ON request_log (model, started_at);
CREATE INDEX request_log_by_outcome ON request_log (outcome, started_at);
-- A key's requests: the final attempt's key here, the earlier attempts' through request_attempts_by_key.
CREATE INDEX request_log_by_key ON request_log (key_id, started_at);
