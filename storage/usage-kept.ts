import { HOUR_MS } from "../schema";
import type { CountTerm } from "./rollup-sums";
import { KEY_ROWS, keyWindowParts } from "./rollups";

/**
 * Each key's sum of its day's past hours (`usage_kept`, migration 0024): the
 * minute buckets' key rows from `start`, the day's start, to `through`, on the
 * hour. The usage publish reads a key's day as that sum and the hour buckets
 * from `through` on; it moves rows on as `through` falls behind, and fills those
 * that are missing from the rollups. The fold adds what it folds into
 * [start, through) (`ADD_LATE_TO_KEPT_SQL`), so a row stays exact without
 * being read again.
 */

/** A row is moved on when it fell behind by at most this long; one further behind is dropped, and filled anew. */
export const KEPT_MOVE_MS = 3 * HOUR_MS;

/** Drops the rows that fell over `KEPT_MOVE_MS` behind `through` (a key deleted, its limits removed, its day rule changed). */
export function pruneKept(db: D1Database, through: number): D1PreparedStatement {
  return db.prepare("DELETE FROM usage_kept WHERE through < ?1").bind(through - KEPT_MOVE_MS);
}

/**
 * The condition on row `k` that it be moved on to [?2, ?3) for a key of the
 * list ?1: a row behind at either end or both, by at most `KEPT_MOVE_MS`, whose
 * start is the day's or moved on the hour (a rolling day: hour buckets take
 * away what it left).
 */
const movable = (k: string) => `${k}.key_id IN (SELECT value FROM json_each(?1))
    AND ${k}.through <= ?3 AND ${k}.through >= ?3 - ${KEPT_MOVE_MS}
    AND ${k}.start <= ?2 AND ${k}.start >= ?2 - ${KEPT_MOVE_MS}
    AND (${k}.start < ?2 OR ${k}.through < ?3)
    AND (${k}.start = ?2 OR (${k}.start % ${HOUR_MS} = 0 AND ?2 % ${HOUR_MS} = 0))`;

/**
 * Moves on the rows of the keys in `keyIds` (a JSON list) that fell behind to
 * [start, through): the hours from a row's `through` to `through` added, those
 * from its start to `start` taken away. Two statements: those with rows in
 * these hours, then the rest.
 */
export function moveKept(db: D1Database, keyIds: string, start: number, through: number): D1PreparedStatement[] {
  const hours = (from: string, to: string, sign: string) =>
    `SELECT k.key_id, ${sign}h.requests AS requests, ${sign}h.total_tokens AS tokens
       FROM usage_kept AS k JOIN rollup_hour AS h ON h.key_id = k.key_id AND h.bucket >= ${from} AND h.bucket < ${to} AND h.${KEY_ROWS}
       WHERE ${movable("k")}`;
  return [
    db
      .prepare(
        `UPDATE usage_kept SET requests = usage_kept.requests + d.requests, tokens = usage_kept.tokens + d.tokens, start = ?2, through = ?3
         FROM (SELECT key_id, SUM(requests) AS requests, SUM(tokens) AS tokens
               FROM (${hours("k.through", "?3", "")} UNION ALL ${hours("k.start", "?2", "-")}) GROUP BY key_id) AS d
         WHERE usage_kept.key_id = d.key_id`,
      )
      .bind(keyIds, start, through),
    db.prepare(`UPDATE usage_kept SET start = ?2, through = ?3 WHERE ${movable("usage_kept")}`).bind(keyIds, start, through),
  ];
}

/**
 * Fills the row of each key in `keyIds` that has none for [start, through) or
 * later — from `terms`, which sum its key rows over that range (window-count.ts:
 * `planRangeCount`). A key with no traffic gets a row of zeros.
 */
export function fillKept(db: D1Database, keyIds: string, start: number, through: number, terms: readonly CountTerm[]): D1PreparedStatement {
  const params: unknown[] = [keyIds, start, through];
  // The terms' compound stays apart: with the zeros beside it, five terms would be a sixth (D1_COMPOUND_TERMS).
  const parts = keyWindowParts(terms, "(SELECT key_id FROM lacking)", params);
  return db
    .prepare(
      `WITH lacking AS MATERIALIZED (
         SELECT j.value AS key_id FROM json_each(?1) AS j
         WHERE NOT EXISTS (SELECT 1 FROM usage_kept AS k WHERE k.key_id = j.value AND k.start = ?2 AND k.through >= ?3))
       INSERT INTO usage_kept (key_id, start, through, requests, tokens)
       SELECT key_id, ?2, ?3, SUM(requests), SUM(tokens)
       FROM (SELECT key_id, 0 AS requests, 0 AS tokens FROM lacking UNION ALL SELECT * FROM (${parts}))
       WHERE true GROUP BY key_id
       ON CONFLICT (key_id) DO UPDATE SET start = excluded.start, through = excluded.through, requests = excluded.requests, tokens = excluded.tokens`,
    )
    .bind(...params);
}

/**
 * Per key of `keyIds` whose row starts at `start`: its day so far — the row's
 * sum and the key rows of the hour buckets from its `through` on.
 */
export function selectKeptDay(db: D1Database, keyIds: string, start: number): D1PreparedStatement {
  return db
    .prepare(
      `SELECT key_id, SUM(requests) AS requests, SUM(tokens) AS tokens FROM (
         SELECT key_id, requests, tokens FROM usage_kept WHERE key_id IN (SELECT value FROM json_each(?1)) AND start = ?2
         UNION ALL
         SELECT k.key_id, h.requests, h.total_tokens
         FROM usage_kept AS k JOIN rollup_hour AS h ON h.key_id = k.key_id AND h.bucket >= k.through AND h.${KEY_ROWS}
         WHERE k.key_id IN (SELECT value FROM json_each(?1)) AND k.start = ?2)
       GROUP BY key_id`,
    )
    .bind(keyIds, start);
}

/**
 * Adds the staged attempts (the fold's `ingest_stage`) that fall in a row's
 * [start, through) to it: the fold's statement, in its transaction, for a batch
 * with attempts sent before window-count.ts's `lateBefore` — no other attempt
 * can fall there.
 */
export const ADD_LATE_TO_KEPT_SQL = `UPDATE usage_kept SET requests = usage_kept.requests + d.requests, tokens = usage_kept.tokens + d.tokens
  FROM (SELECT k.key_id, SUM(e.req) AS requests, SUM(e.tt) AS tokens
        FROM ingest_stage AS e JOIN usage_kept AS k ON k.key_id = e.key AND e.m >= k.start AND e.m < k.through
        GROUP BY k.key_id) AS d
  WHERE usage_kept.key_id = d.key_id`;
