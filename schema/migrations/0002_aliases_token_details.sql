-- Model aliases per upstream (client model name → the name this upstream uses),
-- and cached / reasoning token counts in the rollups.

ALTER TABLE upstreams ADD COLUMN aliases TEXT NOT NULL DEFAULT '{}';

ALTER TABLE rollup_minute ADD COLUMN cached_tokens INTEGER NOT NULL DEFAULT 0;
ALTER TABLE rollup_minute ADD COLUMN reasoning_tokens INTEGER NOT NULL DEFAULT 0;
ALTER TABLE rollup_hour ADD COLUMN cached_tokens INTEGER NOT NULL DEFAULT 0;
ALTER TABLE rollup_hour ADD COLUMN reasoning_tokens INTEGER NOT NULL DEFAULT 0;
ALTER TABLE rollup_day ADD COLUMN cached_tokens INTEGER NOT NULL DEFAULT 0;
ALTER TABLE rollup_day ADD COLUMN reasoning_tokens INTEGER NOT NULL DEFAULT 0;
