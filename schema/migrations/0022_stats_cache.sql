-- Answers of the dashboard's costliest stats reads, kept for reuse (issue #26).
--
-- The Overview asks every 5 s for the busiest keys and client keys of its range
-- and for the pool's headroom; at 100,000 keys those read millions of rollup
-- rows or every key, and each open page asked again. An answer that took long
-- is kept here with how long it took; a read reuses it while it is younger than
-- a multiple of that time, and one reader at a time recomputes it
-- (`claimed_until`; gateway/storage/stats-reuse.ts). Not a projection of the
-- event log: a copy of what the projections answered, safe to delete.
CREATE TABLE stats_cache (
  name           TEXT PRIMARY KEY,
  computed_at    INTEGER NOT NULL DEFAULT 0,
  took_ms        INTEGER NOT NULL DEFAULT 0,
  body           TEXT,
  claimed_until  INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;
