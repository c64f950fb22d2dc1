import type { AuditEntry } from "../schema";
import { seenSql } from "./dedupe-window";

/**
 * The `audit_log` table: the admin trail, one row per admin event. Written by
 * the consumer when it folds the event (and by a rebuild into its shadow copy);
 * read by the admin API.
 */

/**
 * Inserts the admin events of a JSON array parameter (`?1`: objects with id, ts,
 * actor, action, target and detail as JSON text) into `${prefix}audit_log`;
 * `unseenOnly` skips those the dedupe window already holds.
 */
export function insertAuditSql(prefix: string, unseenOnly: boolean): string {
  return `INSERT OR IGNORE INTO ${prefix}audit_log (id, ts, actor, action, target, detail)
  SELECT value->>'$.id', value->>'$.ts', value->>'$.actor', value->>'$.action', value->>'$.target', value->>'$.detail'
  FROM json_each(?1)${unseenOnly ? ` WHERE NOT ${seenSql(prefix, "value->>'$.id'", "value->>'$.ts'")}` : ""}`;
}

/** Admin events, newest first, before `before` (epoch ms). */
export async function listAudit(db: D1Database, limit: number, before: number): Promise<AuditEntry[]> {
  const { results } = await db
    .prepare("SELECT id, ts, actor, action, target, detail FROM audit_log WHERE ts < ?1 ORDER BY ts DESC, id DESC LIMIT ?2")
    .bind(before, limit)
    .all<Omit<AuditEntry, "detail"> & { detail: string | null }>();
  return results.map((r) => ({ ...r, detail: r.detail === null ? null : (JSON.parse(r.detail) as Record<string, unknown>) }));
}
