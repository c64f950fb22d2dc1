-- What the usage publish needs to sum each key's day from few rows (issue #26;
-- stats-consumer/logic/window-count.ts).
--
-- When the pool's time zone was last set. The consumer folds each attempt into
-- the day bucket of the time zone it reads from the settings; a day that began
-- before the zone changed holds attempts folded under both. The publish sums a
-- key's day from the pool's day buckets only when they began after this
-- instant; before, from hour buckets, which no zone changes. 0: the zone has
-- never changed (every day was folded in UTC, the default). The rows already
-- here may have changed it at their last write: that instant.
ALTER TABLE settings ADD COLUMN time_zone_since INTEGER NOT NULL DEFAULT 0;
UPDATE settings SET time_zone_since = updated_at;

-- How many folds held attempts sent over an hour before they were folded. A
-- consumer keeps each key's sum of past hours between publishes while this
-- count stays the same. A live figure, not a projection.
INSERT INTO meta (name, value) VALUES ('late_folds', 0);
