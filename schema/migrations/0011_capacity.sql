-- Capacity (issue #20). Limits configured per upstream (the default for its keys)
-- and per key, as JSON validated by schema/capacity.ts (`{}`: none known); and
-- what the providers' rate-limit headers last said of each key's requests and
-- tokens windows, folded by the consumer from the attempt events (a projection:
-- a replay rebuilds it). A window's columns always come from one reading: the
-- latest (`*_ts`, when its answer arrived), the lower remaining on a tie.

ALTER TABLE upstreams ADD COLUMN limits TEXT NOT NULL DEFAULT '{}';
ALTER TABLE keys ADD COLUMN limits TEXT NOT NULL DEFAULT '{}';

CREATE TABLE key_capacity (
  key_id         TEXT PRIMARY KEY,
  req_ts         INTEGER NOT NULL DEFAULT 0,
  req_limit      INTEGER,
  req_remaining  INTEGER,
  req_reset_at   INTEGER,
  tok_ts         INTEGER NOT NULL DEFAULT 0,
  tok_limit      INTEGER,
  tok_remaining  INTEGER,
  tok_reset_at   INTEGER
) WITHOUT ROWID;
