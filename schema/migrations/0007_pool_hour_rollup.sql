-- The whole pool's hour rollup: one row per hour. A 30-day hourly series of the
-- pool read 720 hours × every key × model × client rows of rollup_hour (193 ms
-- at 1,000 keys); it now reads 720 rows. The consumer folds each batch into it in
-- the same transaction as rollup_hour, from the same deduplicated attempts, so
-- it always equals rollup_hour summed by bucket (a replay rebuild compares it).

CREATE TABLE rollup_pool_hour (
  bucket             INTEGER PRIMARY KEY,
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
  cached_tokens      INTEGER NOT NULL DEFAULT 0,
  reasoning_tokens   INTEGER NOT NULL DEFAULT 0,
  latency_ms_sum     REAL NOT NULL DEFAULT 0,
  latency_ms_max     REAL NOT NULL DEFAULT 0,
  ttfb_ms_sum        REAL NOT NULL DEFAULT 0,
  ttfb_ms_max        REAL NOT NULL DEFAULT 0,
  ttfb_count         INTEGER NOT NULL DEFAULT 0
);

INSERT INTO rollup_pool_hour (bucket, requests, attempts, successes, rate_limited, auth_failed, no_balance, upstream_error,
    network_error, client_error, aborted, prompt_tokens, completion_tokens, total_tokens, estimated_tokens, cached_tokens,
    reasoning_tokens, latency_ms_sum, latency_ms_max, ttfb_ms_sum, ttfb_ms_max, ttfb_count)
  SELECT bucket, SUM(requests), SUM(attempts), SUM(successes), SUM(rate_limited), SUM(auth_failed), SUM(no_balance),
    SUM(upstream_error), SUM(network_error), SUM(client_error), SUM(aborted), SUM(prompt_tokens), SUM(completion_tokens),
    SUM(total_tokens), SUM(estimated_tokens), SUM(cached_tokens), SUM(reasoning_tokens), SUM(latency_ms_sum),
    MAX(latency_ms_max), SUM(ttfb_ms_sum), MAX(ttfb_ms_max), SUM(ttfb_count)
  FROM rollup_hour GROUP BY bucket;
