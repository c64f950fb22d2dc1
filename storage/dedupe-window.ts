import { HOUR_MS, type Settings } from "../schema";

/**
 * The `seen_events` table: the ids of the events the consumer has folded,
 * kept `retention.dedupeHours`, so a redelivered event counts once. Written by
 * the consumer; pruned by the scheduler.
 */

/**
 * Adds the ids of a JSON array parameter (`?1`: objects with id and ts) to
 * `${prefix}seen_events`; `strict` fails the statement (and its transaction) if
 * one is there already.
 */
export function insertSeenSql(prefix: string, strict: boolean): string {
  return `INSERT ${strict ? "" : "OR IGNORE "}INTO ${prefix}seen_events (id, ts) SELECT value->>'$.id', value->>'$.ts' FROM json_each(?1)`;
}

/** A condition true when the event id at `idExpression` is in `${prefix}seen_events`. */
export function seenSql(prefix: string, idExpression: string): string {
  return `EXISTS (SELECT 1 FROM ${prefix}seen_events s WHERE s.id = ${idExpression})`;
}

/** The instant (epoch ms) before which event ids leave the window. */
export function seenEventsCutoff(settings: Settings, now: number): number {
  return now - settings.retention.dedupeHours * HOUR_MS;
}

/** Deletes the ids of events older than `cutoff` (epoch ms). */
export function pruneSeenEvents(db: D1Database, cutoff: number): D1PreparedStatement {
  return db.prepare("DELETE FROM seen_events WHERE ts < ?1").bind(cutoff);
}
