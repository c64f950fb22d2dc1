/**
 * The `stats_cache` table (migration 0022): answers of costly stats reads kept
 * for reuse, by name, with when they were computed and how long that took.
 */

export interface CachedAnswer {
  computedAt: number;
  tookMs: number;
  body: string;
}

/** The answer kept under `name`, if any. */
export async function readCachedAnswer(db: D1Database, name: string): Promise<CachedAnswer | null> {
  const row = await db
    .prepare("SELECT computed_at, took_ms, body FROM stats_cache WHERE name = ?1 AND body IS NOT NULL")
    .bind(name)
    .first<{ computed_at: number; took_ms: number; body: string }>();
  return row ? { computedAt: row.computed_at, tookMs: row.took_ms, body: row.body } : null;
}

/** Claims the recomputation of `name` until `until`, unless another reader holds it at `now`. True when this one may compute. */
export async function claimRecompute(db: D1Database, name: string, now: number, until: number): Promise<boolean> {
  const claimed = await db
    .prepare(
      `INSERT INTO stats_cache (name, claimed_until) VALUES (?1, ?3)
       ON CONFLICT (name) DO UPDATE SET claimed_until = excluded.claimed_until WHERE stats_cache.claimed_until <= ?2
       RETURNING name`,
    )
    .bind(name, now, until)
    .first();
  return claimed !== null;
}

/** Keeps a newly computed answer and releases the claim. */
export async function storeCachedAnswer(db: D1Database, name: string, answer: CachedAnswer): Promise<void> {
  await db
    .prepare(
      `INSERT INTO stats_cache (name, computed_at, took_ms, body, claimed_until) VALUES (?1, ?2, ?3, ?4, 0)
       ON CONFLICT (name) DO UPDATE SET computed_at = excluded.computed_at, took_ms = excluded.took_ms, body = excluded.body, claimed_until = 0`,
    )
    .bind(name, answer.computedAt, answer.tookMs, answer.body)
    .run();
}

/** Forgets `name`: its answer (no longer worth keeping) and any claim on it. */
export async function forgetCachedAnswer(db: D1Database, name: string): Promise<void> {
  await db.prepare("DELETE FROM stats_cache WHERE name = ?1").bind(name).run();
}

/** Releases a claim without an answer (the computation failed). */
export async function releaseClaim(db: D1Database, name: string): Promise<void> {
  await db.prepare("UPDATE stats_cache SET claimed_until = 0 WHERE name = ?1").bind(name).run();
}

/** Deletes answers computed before `cutoff` (the scheduler's retention): names no page asks for any more. */
export function pruneCachedAnswers(db: D1Database, cutoff: number): D1PreparedStatement {
  return db.prepare("DELETE FROM stats_cache WHERE computed_at < ?1 AND claimed_until < ?1").bind(cutoff);
}
