-- The consumer's scratch table. Each ingest transaction first copies its batch's
-- attempts that the dedupe window has not seen into it — parsing the JSON
-- parameter and checking seen_events once — then folds the minute, hour, day and
-- pool-hour rollups from it, and empties it before it commits. Each rollup used
-- to parse the whole parameter and check every id again. Empty between
-- transactions (a failed one rolls back), and never read outside one.

CREATE TABLE ingest_stage (
  id         TEXT NOT NULL,
  m          INTEGER NOT NULL,
  h          INTEGER NOT NULL,
  d          INTEGER NOT NULL,
  key        TEXT NOT NULL,
  model      TEXT NOT NULL,
  client     TEXT NOT NULL,
  lat        REAL NOT NULL,
  ttfb       REAL,
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
  reasoning  INTEGER NOT NULL
);
