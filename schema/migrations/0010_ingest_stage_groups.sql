-- The consumer's scratch table now holds attempts summed per minute, day, key,
-- model and client instead of one row per attempt. A batch whose events are all
-- new (nearly every batch) is summed in the consumer and staged as a few rows —
-- with 10 keys, some twenty for a thousand events, where each staged attempt cost
-- a row written and deleted and two dozen JSON extractions. A batch holding
-- events seen before is staged attempt by attempt, each a group of one, checked
-- against the dedupe window. The rollups sum the stage either way.
-- Empty between transactions, so it is dropped and made again.

DROP TABLE ingest_stage;

CREATE TABLE ingest_stage (
  m          INTEGER NOT NULL,
  h          INTEGER NOT NULL,
  d          INTEGER NOT NULL,
  key        TEXT NOT NULL,
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
  fc         INTEGER NOT NULL
);
