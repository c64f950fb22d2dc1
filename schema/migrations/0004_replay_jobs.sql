-- Audit replay jobs, written by the consumer that runs them (rebuild, requeue).
CREATE TABLE replay_jobs (
  id           TEXT PRIMARY KEY,
  kind         TEXT NOT NULL,              -- rebuild | requeue
  params       TEXT NOT NULL,              -- JSON: from, to, source
  status       TEXT NOT NULL,              -- running | done | failed
  started_at   INTEGER NOT NULL,
  finished_at  INTEGER,
  report       TEXT                        -- JSON
);
