import { parseStoredSettings, type Settings } from "../../schema";

/** The pool's settings: the stored JSON with defaults filled in (an invalid row falls back to defaults). */
export async function readSettings(db: D1Database): Promise<Settings> {
  const row = await db.prepare("SELECT value FROM settings WHERE id = 1").first<{ value: string }>();
  return parseStoredSettings(row?.value ?? null);
}

export async function writeSettings(db: D1Database, settings: Settings, now: number): Promise<void> {
  await db
    .prepare("INSERT INTO settings (id, value, updated_at) VALUES (1, ?1, ?2) ON CONFLICT (id) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at")
    .bind(JSON.stringify(settings), now)
    .run();
}

/** Admin events as the consumer logged them, newest first, before `before` (epoch ms). */
export async function listAudit(db: D1Database, limit: number, before: number): Promise<Record<string, unknown>[]> {
  const { results } = await db
    .prepare("SELECT id, ts, actor, action, target, detail FROM audit_log WHERE ts < ?1 ORDER BY ts DESC, id DESC LIMIT ?2")
    .bind(before, limit)
    .all<Record<string, unknown>>();
  return results.map((r) => ({ ...r, detail: r.detail === null ? null : JSON.parse(String(r.detail)) }));
}

/** A replay job as the consumer recorded it, or null if it has not started yet. */
export async function findReplayJob(db: D1Database, id: string): Promise<Record<string, unknown> | null> {
  const row = await db.prepare("SELECT id, kind, params, status, started_at, finished_at, report FROM replay_jobs WHERE id = ?1").bind(id).first<Record<string, unknown>>();
  if (!row) return null;
  return {
    id: row.id,
    kind: row.kind,
    params: JSON.parse(String(row.params)),
    status: row.status,
    startedAt: row.started_at,
    finishedAt: row.finished_at,
    report: row.report === null ? null : JSON.parse(String(row.report)),
  };
}
