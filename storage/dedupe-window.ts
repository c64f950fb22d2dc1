import { HOUR_MS, type Settings } from "../schema";

/**
 * The `seen_events` table: the ids of the events the consumer has folded,
 * with their times, kept `retention.dedupeHours`, so a redelivered event
 * counts once. Keyed by time, then id (migration 0025): an event's time is
 * part of it, so a redelivery finds its row by both; new rows land at the
 * table's end whatever the ids look like, and retention cuts a range of that
 * key with no index of its own (one row D1 bills an event where the index by
 * time was a second). Written by the consumer; pruned by the scheduler.
 */

/**
 * Adds the ids of a JSON array parameter (`?1`: objects with id and ts) to
 * `${prefix}seen_events`; `strict` fails the statement (and its transaction) if
 * one is there already.
 */
export function insertSeenSql(prefix: string, strict: boolean): string {
  return `INSERT ${strict ? "" : "OR IGNORE "}INTO ${prefix}seen_events (id, ts) SELECT value->>'$.id', value->>'$.ts' FROM json_each(?1)`;
}

/** A condition true when the event with the id at `idExpression` and the time at `tsExpression` is in `${prefix}seen_events`. */
export function seenSql(prefix: string, idExpression: string, tsExpression: string): string {
  return `EXISTS (SELECT 1 FROM ${prefix}seen_events s WHERE s.ts = ${tsExpression} AND s.id = ${idExpression})`;
}

/** The instant (epoch ms) before which event ids leave the window. */
export function seenEventsCutoff(settings: Settings, now: number): number {
  return now - settings.retention.dedupeHours * HOUR_MS;
}

/** Deletes the ids of events older than `cutoff` (epoch ms). */
export function pruneSeenEvents(db: D1Database, cutoff: number): D1PreparedStatement {
  return db.prepare("DELETE FROM seen_events WHERE ts < ?1").bind(cutoff);
}
