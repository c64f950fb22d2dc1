-- The fold's layout (issue #26; storage/fold-layout.ts): which of how many fold
-- databases this one is ("1/1" for DB alone, "2/8" for DB_2 of eight). A key's
-- rows live in the database its id hashes to among N, so they are right only
-- under the list of databases they were folded with. Each fold transaction sets
-- `checked` to its own layout first: a database that holds another fails the
-- constraint, and the batch is retried instead of folded into the wrong place.
-- The first fold into a fresh database records its layout.
CREATE TABLE fold_layout (
  id       INTEGER PRIMARY KEY CHECK (id = 1),
  layout   TEXT NOT NULL,
  checked  TEXT,
  CONSTRAINT fold_layout_unchanged CHECK (checked IS NULL OR checked = layout)
);

-- A database that has folded events did so as the only one: every deployment
-- before this migration had DB alone.
INSERT INTO fold_layout (id, layout, checked)
  SELECT 1, '1/1', NULL
  WHERE EXISTS (SELECT 1 FROM seen_events) OR EXISTS (SELECT 1 FROM audit_log) OR EXISTS (SELECT 1 FROM key_health)
     OR EXISTS (SELECT 1 FROM rollup_day) OR EXISTS (SELECT 1 FROM request_log);
