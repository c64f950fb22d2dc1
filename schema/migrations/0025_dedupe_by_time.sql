-- The dedupe window keyed by time, then id (issue #26; storage/dedupe-window.ts).
--
-- It was keyed by id with an index by time for retention: two rows D1 bills
-- an event, and inserts that land anywhere in the table unless ids are
-- time-ordered. An event's time is part of the event, so a redelivery finds
-- its row by both; rows now land at the table's end whatever the producer's
-- ids, and retention cuts a range of the key itself. A consumer of the old
-- version keeps working on this table until the new one is deployed (its
-- lookups by id alone scan it, on the rare path of a redelivered batch).
CREATE TABLE seen_events_by_time (
  ts  INTEGER NOT NULL,
  id  TEXT NOT NULL,
  PRIMARY KEY (ts, id)
) WITHOUT ROWID;
INSERT INTO seen_events_by_time (ts, id) SELECT ts, id FROM seen_events;
DROP TABLE seen_events;
ALTER TABLE seen_events_by_time RENAME TO seen_events;
