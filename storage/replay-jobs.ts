/**
 * The `replay_jobs` table: audit replay jobs and their reports. Written by the
 * consumer, which runs them; read by the admin API.
 */

export type ReplayJobKind = "rebuild" | "requeue" | "refold";
export type ReplayJobStatus = "running" | "done" | "failed";

/** A replay job as recorded. */
export interface ReplayJobRecord {
  id: string;
  kind: ReplayJobKind;
  params: Record<string, unknown>;
  status: ReplayJobStatus;
  startedAt: number;
  finishedAt: number | null;
  report: unknown;
}

/** Records that a job has started (a job run again starts afresh). */
export async function startReplayJob(db: D1Database, job: { id: string; kind: ReplayJobKind; params: Record<string, unknown> }, now: number): Promise<void> {
  await db
    .prepare("INSERT OR REPLACE INTO replay_jobs (id, kind, params, status, started_at) VALUES (?1, ?2, ?3, 'running', ?4)")
    .bind(job.id, job.kind, JSON.stringify(job.params), now)
    .run();
}

/** Records how a job ended, with its report. */
export async function finishReplayJob(db: D1Database, id: string, status: "done" | "failed", report: unknown, now: number): Promise<void> {
  await db.prepare("UPDATE replay_jobs SET status = ?2, finished_at = ?3, report = ?4 WHERE id = ?1").bind(id, status, now, JSON.stringify(report)).run();
}

/** A job as recorded, or null if the consumer has not started it yet. */
export async function findReplayJob(db: D1Database, id: string): Promise<ReplayJobRecord | null> {
  const row = await db.prepare("SELECT id, kind, params, status, started_at, finished_at, report FROM replay_jobs WHERE id = ?1").bind(id).first<{
    id: string;
    kind: ReplayJobKind;
    params: string;
    status: ReplayJobStatus;
    started_at: number;
    finished_at: number | null;
    report: string | null;
  }>();
  if (!row) return null;
  return {
    id: row.id,
    kind: row.kind,
    params: JSON.parse(row.params) as Record<string, unknown>,
    status: row.status,
    startedAt: row.started_at,
    finishedAt: row.finished_at,
    report: row.report === null ? null : (JSON.parse(row.report) as unknown),
  };
}
