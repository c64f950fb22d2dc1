-- Each key's sum of its day's past hours, kept in D1 for the usage publish
-- (issue #26; stats-consumer/storage/usage-store.ts, storage/usage-kept.ts).
--
-- A key whose day does not begin at the pool's midnight (another zone's, or a
-- rolling day) counts its day as the sum of the minute buckets from `start` (the
-- day's start) to `through` (on the hour), kept here, and the hour buckets from
-- `through` on, read at each publish. Whichever consumer publishes moves a row
-- on when `through` falls behind (adding the hours it passed, and for a rolling
-- day taking away those its start passed); the fold adds the attempts it folds
-- into [start, through) — only attempts sent over an hour before the fold can
-- land there. A row a key: its current day. A cache of the rollups, not a
-- projection of the event log: it is refilled from them when missing.
CREATE TABLE usage_kept (
  key_id TEXT NOT NULL PRIMARY KEY,
  start INTEGER NOT NULL,
  through INTEGER NOT NULL,
  requests INTEGER NOT NULL,
  tokens INTEGER NOT NULL
) WITHOUT ROWID;

-- Rows not moved on for hours are dropped by the publish (a key deleted, its
-- limits removed, its day rule changed).
CREATE INDEX usage_kept_through ON usage_kept(through);

-- Migration 0023's count of late folds told each consumer isolate when the sums
-- it kept in memory might be stale; the fold now adds to the kept sums itself.
DELETE FROM meta WHERE name = 'late_folds';
