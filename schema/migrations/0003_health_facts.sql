-- Key health as order-independent facts: latest times of each kind of evidence,
-- the most recent failures, last-writer-wins error/balance/probe values. Folding
-- an event only ever takes a maximum, adds to a bounded set, or replaces a value
-- with a later one, so the result is the same in any order and under duplicates,
-- and replaying the log rebuilds it exactly. The state (active, cooling, …) is
-- derived from these facts by schema/health.ts. The table is a projection with no
-- rows worth keeping yet, so it is recreated rather than altered.

DROP TABLE key_health;

CREATE TABLE key_health (
  key_id              TEXT PRIMARY KEY,
  last_ok_ts          INTEGER NOT NULL DEFAULT 0,   -- a success, by traffic or probe
  last_rate_limit_ts  INTEGER NOT NULL DEFAULT 0,
  cool_until          INTEGER NOT NULL DEFAULT 0,   -- max over 429s of ts + Retry-After
  last_auth_fail_ts   INTEGER NOT NULL DEFAULT 0,
  last_no_balance_ts  INTEGER NOT NULL DEFAULT 0,
  failures            TEXT NOT NULL DEFAULT '[]',   -- newest 5xx/network failures, "ts:eventId", at most 16
  last_error_ts       INTEGER NOT NULL DEFAULT 0,
  last_error          TEXT NOT NULL DEFAULT '',
  last_used_at        INTEGER NOT NULL DEFAULT 0,
  balance             REAL,
  balance_ts          INTEGER NOT NULL DEFAULT 0,
  last_probe_ts       INTEGER NOT NULL DEFAULT 0,
  last_probe_result   TEXT NOT NULL DEFAULT ''
) WITHOUT ROWID;

-- When the consumer last claimed the right to write the KV snapshot (at most once a second).
INSERT INTO meta (name, value) VALUES ('snapshot_published_at', 0);
