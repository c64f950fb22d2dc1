-- The snapshot is stored in parts (schema/snapshot.ts): a head rewritten when a
-- key's state changes, and key parts named by their content, rewritten only
-- when keys change. This table lists the parts the newest head names (retired_at
-- NULL, in order) and the parts it stopped naming, which the consumer deletes
-- from KV an hour later (isolates may still be reading an older head).
CREATE TABLE snapshot_parts (
  name        TEXT PRIMARY KEY,
  ord         INTEGER NOT NULL,
  keys        INTEGER NOT NULL,
  retired_at  INTEGER
) WITHOUT ROWID;

-- Keys with an attempt in a minute that did not succeed (client errors and
-- aborts aside): the only keys whose success rate is not 1, found without
-- reading the rest of the hour's rollups.
CREATE INDEX rollup_minute_misses ON rollup_minute(bucket, key_id)
  WHERE successes < attempts - client_error - aborted;

-- When a publish that reads every key last claimed its turn (a batch that
-- changed keys leaves its publish to such a claim made after it committed).
INSERT INTO meta (name, value) VALUES ('snapshot_keys_claimed_at', 0);

-- The snapshot version whose publish recorded the part list: a publish of
-- states writes its head only if the list it read is still the newest.
INSERT INTO meta (name, value) VALUES ('snapshot_parts_version', 0);
