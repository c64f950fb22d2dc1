import { D1_WORK_PREFIX, type D1Work } from "../../schema";

/**
 * What D1 itself spent on this isolate's statements that committed — each
 * result's `meta.duration` (the statement's execution inside the database,
 * without the network or the wait for the database) and `meta.rows_written`;
 * a transaction that failed returns no results to count — and the events its
 * fold transactions committed, not yet stored. The next fold's transaction
 * adds them to their meta rows (`/metrics`: keypool_d1_seconds_total and the
 * rest), so counting costs no write of its own; an isolate that is replaced
 * before its next fold loses what it held (its last fold's, and its
 * publishes' since). Counted apart for each database of the fold
 * (`foldShards`), so each one's meta holds its own time: the first's also
 * holds the publishes'.
 */
const pending = new Map<number, Map<string, number>>();

function add(name: string, n: number, shard: number): void {
  if (n <= 0) return;
  let counts = pending.get(shard);
  if (!counts) pending.set(shard, (counts = new Map()));
  counts.set(name, (counts.get(name) ?? 0) + n);
}

/** Counts what D1 spent on one batch of statements that committed. */
export function countD1Work(work: D1Work, results: readonly D1Result[], shard = 0): void {
  let us = 0;
  let written = 0;
  for (const r of results) {
    us += Math.round((r.meta?.duration ?? 0) * 1000);
    written += r.meta?.rows_written ?? 0;
  }
  add(`${D1_WORK_PREFIX}${work}_us`, us, shard);
  add(`${D1_WORK_PREFIX}${work}_rows_written`, written, shard);
}

/** Counts the events a committed fold transaction held. */
export function countFoldedEvents(n: number, shard = 0): void {
  add(`${D1_WORK_PREFIX}fold_events`, n, shard);
}

/**
 * Takes what is pending, with the statement that adds it to meta (null:
 * nothing is). What a transaction takes is no longer pending — another batch
 * of this isolate folding meanwhile does not store it too — so give it back
 * (`restoreD1Work`) if that transaction does not commit.
 */
export function takeD1Work(db: D1Database, shard = 0): { statement: D1PreparedStatement; taken: Map<string, number> } | null {
  const taken = pending.get(shard);
  if (!taken || taken.size === 0) return null;
  pending.delete(shard);
  const statement = db
    .prepare(
      `INSERT INTO meta (name, value) SELECT key, value FROM json_each(?1) WHERE true
       ON CONFLICT (name) DO UPDATE SET value = meta.value + excluded.value`,
    )
    .bind(JSON.stringify(Object.fromEntries(taken)));
  return { statement, taken };
}

/** Makes what a transaction that did not commit took pending again. */
export function restoreD1Work(taken: Map<string, number>, shard = 0): void {
  for (const [name, n] of taken) add(name, n, shard);
}
