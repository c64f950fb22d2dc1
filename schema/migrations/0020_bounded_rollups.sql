-- Rollups bounded by keys × models and client keys × models (issue #26).
--
-- rollup_minute, rollup_hour and rollup_day were keyed by bucket × key × model
-- × client key: in a large pool nearly every request made a row of its own
-- (docs/scale.md). Each keeps its columns and primary key and now holds two
-- kinds of rows: a key's, summed over client keys (client_key_id = '*'), and a
-- client key's, summed over keys (key_id = '*'). Every read names its kind
-- (storage/rollups.ts: KEY_ROWS, CLIENT_ROWS); a read that needs a key and a
-- client key together goes to the request log.
--
-- Each table is rebuilt with a CHECK that a row is one kind or the other. The
-- consumer deployed before this migration writes key × model × client rows: its
-- batches fail against the new tables, and the queue redelivers them to the
-- consumer written for it, which counts them once (docs/operations.md,
-- upgrading). The rows already there are summed into both kinds — counts and
-- sums add up, maxima keep the larger — so every total by key, client key,
-- model, upstream and bucket stays what it was.

-- rollup_minute
CREATE TABLE rollup_minute_bounded (
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
  cached_tokens      INTEGER NOT NULL DEFAULT 0,
  reasoning_tokens   INTEGER NOT NULL DEFAULT 0,
  cost_micros        INTEGER NOT NULL DEFAULT 0,
  unpriced           INTEGER NOT NULL DEFAULT 0,
  last_at            INTEGER NOT NULL DEFAULT 0,
  PRIMARY KEY (bucket, key_id, model, client_key_id),
  -- A key's row (summed over client keys) or a client key's (summed over keys), never both at once.
  CHECK ((key_id = '*') <> (client_key_id = '*'))
) WITHOUT ROWID;
INSERT INTO rollup_minute_bounded (bucket, key_id, model, client_key_id, requests, attempts, successes, rate_limited, auth_failed, no_balance, upstream_error, network_error, client_error, aborted, prompt_tokens, completion_tokens, total_tokens, estimated_tokens, latency_ms_sum, latency_ms_max, ttfb_ms_sum, ttfb_ms_max, ttfb_count, cached_tokens, reasoning_tokens, cost_micros, unpriced, last_at)
  SELECT bucket, key_id, model, '*',
    SUM(requests),
    SUM(attempts),
    SUM(successes),
    SUM(rate_limited),
    SUM(auth_failed),
    SUM(no_balance),
    SUM(upstream_error),
    SUM(network_error),
    SUM(client_error),
    SUM(aborted),
    SUM(prompt_tokens),
    SUM(completion_tokens),
    SUM(total_tokens),
    SUM(estimated_tokens),
    SUM(latency_ms_sum),
    MAX(latency_ms_max),
    SUM(ttfb_ms_sum),
    MAX(ttfb_ms_max),
    SUM(ttfb_count),
    SUM(cached_tokens),
    SUM(reasoning_tokens),
    SUM(cost_micros),
    SUM(unpriced),
    MAX(last_at)
  FROM rollup_minute GROUP BY bucket, key_id, model;
INSERT INTO rollup_minute_bounded (bucket, key_id, model, client_key_id, requests, attempts, successes, rate_limited, auth_failed, no_balance, upstream_error, network_error, client_error, aborted, prompt_tokens, completion_tokens, total_tokens, estimated_tokens, latency_ms_sum, latency_ms_max, ttfb_ms_sum, ttfb_ms_max, ttfb_count, cached_tokens, reasoning_tokens, cost_micros, unpriced, last_at)
  SELECT bucket, '*', model, client_key_id,
    SUM(requests),
    SUM(attempts),
    SUM(successes),
    SUM(rate_limited),
    SUM(auth_failed),
    SUM(no_balance),
    SUM(upstream_error),
    SUM(network_error),
    SUM(client_error),
    SUM(aborted),
    SUM(prompt_tokens),
    SUM(completion_tokens),
    SUM(total_tokens),
    SUM(estimated_tokens),
    SUM(latency_ms_sum),
    MAX(latency_ms_max),
    SUM(ttfb_ms_sum),
    MAX(ttfb_ms_max),
    SUM(ttfb_count),
    SUM(cached_tokens),
    SUM(reasoning_tokens),
    SUM(cost_micros),
    SUM(unpriced),
    MAX(last_at)
  FROM rollup_minute GROUP BY bucket, client_key_id, model;
DROP TABLE rollup_minute;
ALTER TABLE rollup_minute_bounded RENAME TO rollup_minute;
CREATE INDEX rollup_minute_key ON rollup_minute(key_id, bucket);

-- rollup_hour
CREATE TABLE rollup_hour_bounded (
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
  cached_tokens      INTEGER NOT NULL DEFAULT 0,
  reasoning_tokens   INTEGER NOT NULL DEFAULT 0,
  cost_micros        INTEGER NOT NULL DEFAULT 0,
  unpriced           INTEGER NOT NULL DEFAULT 0,
  last_at            INTEGER NOT NULL DEFAULT 0,
  PRIMARY KEY (bucket, key_id, model, client_key_id),
  -- A key's row (summed over client keys) or a client key's (summed over keys), never both at once.
  CHECK ((key_id = '*') <> (client_key_id = '*'))
) WITHOUT ROWID;
INSERT INTO rollup_hour_bounded (bucket, key_id, model, client_key_id, requests, attempts, successes, rate_limited, auth_failed, no_balance, upstream_error, network_error, client_error, aborted, prompt_tokens, completion_tokens, total_tokens, estimated_tokens, latency_ms_sum, latency_ms_max, ttfb_ms_sum, ttfb_ms_max, ttfb_count, cached_tokens, reasoning_tokens, cost_micros, unpriced, last_at)
  SELECT bucket, key_id, model, '*',
    SUM(requests),
    SUM(attempts),
    SUM(successes),
    SUM(rate_limited),
    SUM(auth_failed),
    SUM(no_balance),
    SUM(upstream_error),
    SUM(network_error),
    SUM(client_error),
    SUM(aborted),
    SUM(prompt_tokens),
    SUM(completion_tokens),
    SUM(total_tokens),
    SUM(estimated_tokens),
    SUM(latency_ms_sum),
    MAX(latency_ms_max),
    SUM(ttfb_ms_sum),
    MAX(ttfb_ms_max),
    SUM(ttfb_count),
    SUM(cached_tokens),
    SUM(reasoning_tokens),
    SUM(cost_micros),
    SUM(unpriced),
    MAX(last_at)
  FROM rollup_hour GROUP BY bucket, key_id, model;
INSERT INTO rollup_hour_bounded (bucket, key_id, model, client_key_id, requests, attempts, successes, rate_limited, auth_failed, no_balance, upstream_error, network_error, client_error, aborted, prompt_tokens, completion_tokens, total_tokens, estimated_tokens, latency_ms_sum, latency_ms_max, ttfb_ms_sum, ttfb_ms_max, ttfb_count, cached_tokens, reasoning_tokens, cost_micros, unpriced, last_at)
  SELECT bucket, '*', model, client_key_id,
    SUM(requests),
    SUM(attempts),
    SUM(successes),
    SUM(rate_limited),
    SUM(auth_failed),
    SUM(no_balance),
    SUM(upstream_error),
    SUM(network_error),
    SUM(client_error),
    SUM(aborted),
    SUM(prompt_tokens),
    SUM(completion_tokens),
    SUM(total_tokens),
    SUM(estimated_tokens),
    SUM(latency_ms_sum),
    MAX(latency_ms_max),
    SUM(ttfb_ms_sum),
    MAX(ttfb_ms_max),
    SUM(ttfb_count),
    SUM(cached_tokens),
    SUM(reasoning_tokens),
    SUM(cost_micros),
    SUM(unpriced),
    MAX(last_at)
  FROM rollup_hour GROUP BY bucket, client_key_id, model;
DROP TABLE rollup_hour;
ALTER TABLE rollup_hour_bounded RENAME TO rollup_hour;
CREATE INDEX rollup_hour_key ON rollup_hour(key_id, bucket);

-- rollup_day
CREATE TABLE rollup_day_bounded (
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
  cached_tokens      INTEGER NOT NULL DEFAULT 0,
  reasoning_tokens   INTEGER NOT NULL DEFAULT 0,
  cost_micros        INTEGER NOT NULL DEFAULT 0,
  unpriced           INTEGER NOT NULL DEFAULT 0,
  last_at            INTEGER NOT NULL DEFAULT 0,
  PRIMARY KEY (bucket, key_id, model, client_key_id),
  -- A key's row (summed over client keys) or a client key's (summed over keys), never both at once.
  CHECK ((key_id = '*') <> (client_key_id = '*'))
) WITHOUT ROWID;
INSERT INTO rollup_day_bounded (bucket, key_id, model, client_key_id, requests, attempts, successes, rate_limited, auth_failed, no_balance, upstream_error, network_error, client_error, aborted, prompt_tokens, completion_tokens, total_tokens, estimated_tokens, latency_ms_sum, latency_ms_max, ttfb_ms_sum, ttfb_ms_max, ttfb_count, cached_tokens, reasoning_tokens, cost_micros, unpriced, last_at)
  SELECT bucket, key_id, model, '*',
    SUM(requests),
    SUM(attempts),
    SUM(successes),
    SUM(rate_limited),
    SUM(auth_failed),
    SUM(no_balance),
    SUM(upstream_error),
    SUM(network_error),
    SUM(client_error),
    SUM(aborted),
    SUM(prompt_tokens),
    SUM(completion_tokens),
    SUM(total_tokens),
    SUM(estimated_tokens),
    SUM(latency_ms_sum),
    MAX(latency_ms_max),
    SUM(ttfb_ms_sum),
    MAX(ttfb_ms_max),
    SUM(ttfb_count),
    SUM(cached_tokens),
    SUM(reasoning_tokens),
    SUM(cost_micros),
    SUM(unpriced),
    MAX(last_at)
  FROM rollup_day GROUP BY bucket, key_id, model;
INSERT INTO rollup_day_bounded (bucket, key_id, model, client_key_id, requests, attempts, successes, rate_limited, auth_failed, no_balance, upstream_error, network_error, client_error, aborted, prompt_tokens, completion_tokens, total_tokens, estimated_tokens, latency_ms_sum, latency_ms_max, ttfb_ms_sum, ttfb_ms_max, ttfb_count, cached_tokens, reasoning_tokens, cost_micros, unpriced, last_at)
  SELECT bucket, '*', model, client_key_id,
    SUM(requests),
    SUM(attempts),
    SUM(successes),
    SUM(rate_limited),
    SUM(auth_failed),
    SUM(no_balance),
    SUM(upstream_error),
    SUM(network_error),
    SUM(client_error),
    SUM(aborted),
    SUM(prompt_tokens),
    SUM(completion_tokens),
    SUM(total_tokens),
    SUM(estimated_tokens),
    SUM(latency_ms_sum),
    MAX(latency_ms_max),
    SUM(ttfb_ms_sum),
    MAX(ttfb_ms_max),
    SUM(ttfb_count),
    SUM(cached_tokens),
    SUM(reasoning_tokens),
    SUM(cost_micros),
    SUM(unpriced),
    MAX(last_at)
  FROM rollup_day GROUP BY bucket, client_key_id, model;
DROP TABLE rollup_day;
ALTER TABLE rollup_day_bounded RENAME TO rollup_day;
CREATE INDEX rollup_day_key ON rollup_day(key_id, bucket);

-- Minutes in which a key's attempts did not all succeed (migration 0018), of key rows only.
CREATE INDEX rollup_minute_misses ON rollup_minute(bucket, key_id)
  WHERE client_key_id = '*' AND successes < attempts - client_error - aborted;
