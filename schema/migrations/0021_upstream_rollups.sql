-- Usage per upstream × model for each grain (issue #26).
--
-- The dashboard's Overview asks every 5 s for the pool's series and its
-- breakdowns by model and by upstream; over key rows those read every key's row
-- of the range (21.5 million for an hour by minute at 10,000 requests a second
-- and 100,000 keys: docs/scale.md). These tables hold the same usage summed
-- per upstream and model — at most upstreams × models rows a bucket, whatever
-- the number of keys — and answer every stats read that names no key and no
-- client key (storage/rollups.ts). The upstream is the one the attempt was
-- sent to (the event's), so a deleted key's usage stays under its upstream.
--
-- The rows are summed from the key rows already there, each key's upstream
-- taken from the keys table; usage of keys deleted before this migration has
-- no upstream left to name and is summed under ''. A rebuild from the archive
-- names the upstream each event carried.
--
-- The consumer's stage gains the attempt's upstream (`up`, no default): the
-- consumer deployed before this migration cannot stage into it, its batches
-- fail and the queue redelivers them to the consumer written for it, which
-- folds them into these tables too (docs/operations.md, upgrading).

CREATE TABLE rollup_upstream_minute (
  bucket             INTEGER NOT NULL,
  upstream_id        TEXT NOT NULL,
  model              TEXT NOT NULL,
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
  cached_tokens      INTEGER NOT NULL DEFAULT 0,
  reasoning_tokens   INTEGER NOT NULL DEFAULT 0,
  cost_micros        INTEGER NOT NULL DEFAULT 0,
  unpriced           INTEGER NOT NULL DEFAULT 0,
  last_at            INTEGER NOT NULL DEFAULT 0,
  PRIMARY KEY (bucket, upstream_id, model)
) WITHOUT ROWID;
INSERT INTO rollup_upstream_minute (bucket, upstream_id, model, requests, attempts, successes, rate_limited, auth_failed, no_balance, upstream_error, network_error, client_error, aborted, prompt_tokens, completion_tokens, total_tokens, estimated_tokens, latency_ms_sum, latency_ms_max, ttfb_ms_sum, ttfb_ms_max, ttfb_count, cached_tokens, reasoning_tokens, cost_micros, unpriced, last_at)
  SELECT r.bucket, COALESCE(k.upstream_id, ''), r.model,
    SUM(r.requests),
    SUM(r.attempts),
    SUM(r.successes),
    SUM(r.rate_limited),
    SUM(r.auth_failed),
    SUM(r.no_balance),
    SUM(r.upstream_error),
    SUM(r.network_error),
    SUM(r.client_error),
    SUM(r.aborted),
    SUM(r.prompt_tokens),
    SUM(r.completion_tokens),
    SUM(r.total_tokens),
    SUM(r.estimated_tokens),
    SUM(r.latency_ms_sum),
    MAX(r.latency_ms_max),
    SUM(r.ttfb_ms_sum),
    MAX(r.ttfb_ms_max),
    SUM(r.ttfb_count),
    SUM(r.cached_tokens),
    SUM(r.reasoning_tokens),
    SUM(r.cost_micros),
    SUM(r.unpriced),
    MAX(r.last_at)
  FROM rollup_minute r LEFT JOIN keys k ON k.id = r.key_id
  WHERE r.client_key_id = '*'
  GROUP BY r.bucket, COALESCE(k.upstream_id, ''), r.model;

CREATE TABLE rollup_upstream_hour (
  bucket             INTEGER NOT NULL,
  upstream_id        TEXT NOT NULL,
  model              TEXT NOT NULL,
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
  cached_tokens      INTEGER NOT NULL DEFAULT 0,
  reasoning_tokens   INTEGER NOT NULL DEFAULT 0,
  cost_micros        INTEGER NOT NULL DEFAULT 0,
  unpriced           INTEGER NOT NULL DEFAULT 0,
  last_at            INTEGER NOT NULL DEFAULT 0,
  PRIMARY KEY (bucket, upstream_id, model)
) WITHOUT ROWID;
INSERT INTO rollup_upstream_hour (bucket, upstream_id, model, requests, attempts, successes, rate_limited, auth_failed, no_balance, upstream_error, network_error, client_error, aborted, prompt_tokens, completion_tokens, total_tokens, estimated_tokens, latency_ms_sum, latency_ms_max, ttfb_ms_sum, ttfb_ms_max, ttfb_count, cached_tokens, reasoning_tokens, cost_micros, unpriced, last_at)
  SELECT r.bucket, COALESCE(k.upstream_id, ''), r.model,
    SUM(r.requests),
    SUM(r.attempts),
    SUM(r.successes),
    SUM(r.rate_limited),
    SUM(r.auth_failed),
    SUM(r.no_balance),
    SUM(r.upstream_error),
    SUM(r.network_error),
    SUM(r.client_error),
    SUM(r.aborted),
    SUM(r.prompt_tokens),
    SUM(r.completion_tokens),
    SUM(r.total_tokens),
    SUM(r.estimated_tokens),
    SUM(r.latency_ms_sum),
    MAX(r.latency_ms_max),
    SUM(r.ttfb_ms_sum),
    MAX(r.ttfb_ms_max),
    SUM(r.ttfb_count),
    SUM(r.cached_tokens),
    SUM(r.reasoning_tokens),
    SUM(r.cost_micros),
    SUM(r.unpriced),
    MAX(r.last_at)
  FROM rollup_hour r LEFT JOIN keys k ON k.id = r.key_id
  WHERE r.client_key_id = '*'
  GROUP BY r.bucket, COALESCE(k.upstream_id, ''), r.model;

CREATE TABLE rollup_upstream_day (
  bucket             INTEGER NOT NULL,
  upstream_id        TEXT NOT NULL,
  model              TEXT NOT NULL,
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
  cached_tokens      INTEGER NOT NULL DEFAULT 0,
  reasoning_tokens   INTEGER NOT NULL DEFAULT 0,
  cost_micros        INTEGER NOT NULL DEFAULT 0,
  unpriced           INTEGER NOT NULL DEFAULT 0,
  last_at            INTEGER NOT NULL DEFAULT 0,
  PRIMARY KEY (bucket, upstream_id, model)
) WITHOUT ROWID;
INSERT INTO rollup_upstream_day (bucket, upstream_id, model, requests, attempts, successes, rate_limited, auth_failed, no_balance, upstream_error, network_error, client_error, aborted, prompt_tokens, completion_tokens, total_tokens, estimated_tokens, latency_ms_sum, latency_ms_max, ttfb_ms_sum, ttfb_ms_max, ttfb_count, cached_tokens, reasoning_tokens, cost_micros, unpriced, last_at)
  SELECT r.bucket, COALESCE(k.upstream_id, ''), r.model,
    SUM(r.requests),
    SUM(r.attempts),
    SUM(r.successes),
    SUM(r.rate_limited),
    SUM(r.auth_failed),
    SUM(r.no_balance),
    SUM(r.upstream_error),
    SUM(r.network_error),
    SUM(r.client_error),
    SUM(r.aborted),
    SUM(r.prompt_tokens),
    SUM(r.completion_tokens),
    SUM(r.total_tokens),
    SUM(r.estimated_tokens),
    SUM(r.latency_ms_sum),
    MAX(r.latency_ms_max),
    SUM(r.ttfb_ms_sum),
    MAX(r.ttfb_ms_max),
    SUM(r.ttfb_count),
    SUM(r.cached_tokens),
    SUM(r.reasoning_tokens),
    SUM(r.cost_micros),
    SUM(r.unpriced),
    MAX(r.last_at)
  FROM rollup_day r LEFT JOIN keys k ON k.id = r.key_id
  WHERE r.client_key_id = '*'
  GROUP BY r.bucket, COALESCE(k.upstream_id, ''), r.model;

-- The stage, empty between transactions, made again with the attempt's upstream.
DROP TABLE ingest_stage;
CREATE TABLE ingest_stage (
  m          INTEGER NOT NULL,
  h          INTEGER NOT NULL,
  d          INTEGER NOT NULL,
  key        TEXT NOT NULL,
  up         TEXT NOT NULL,
  model      TEXT NOT NULL,
  client     TEXT NOT NULL,
  n          INTEGER NOT NULL,
  req        INTEGER NOT NULL,
  ok         INTEGER NOT NULL,
  rl         INTEGER NOT NULL,
  af         INTEGER NOT NULL,
  nb         INTEGER NOT NULL,
  ue         INTEGER NOT NULL,
  ne         INTEGER NOT NULL,
  ce         INTEGER NOT NULL,
  ab         INTEGER NOT NULL,
  pt         INTEGER NOT NULL,
  ct         INTEGER NOT NULL,
  tt         INTEGER NOT NULL,
  et         INTEGER NOT NULL,
  cached     INTEGER NOT NULL,
  reasoning  INTEGER NOT NULL,
  ls         REAL NOT NULL,
  lm         REAL NOT NULL,
  fs         REAL NOT NULL,
  fm         REAL NOT NULL,
  fc         INTEGER NOT NULL,
  cost       INTEGER NOT NULL DEFAULT 0,
  unpriced   INTEGER NOT NULL DEFAULT 0,
  la         INTEGER NOT NULL DEFAULT 0
);
