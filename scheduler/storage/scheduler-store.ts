import { SNAPSHOT_KV_KEY, parseStoredSettings, type Settings } from "../../schema";
import type { RetentionCutoffs } from "../logic/retention";

export async function readSettings(db: D1Database): Promise<Settings> {
  const row = await db.prepare("SELECT value FROM settings WHERE id = 1").first<{ value: string }>();
  return parseStoredSettings(row?.value ?? null);
}

/**
 * Deletes rollup rows and dedupe ids past their horizons, in one transaction;
 * the only write the scheduler makes to the consumer's projections.
 */
export async function pruneProjections(db: D1Database, cutoffs: RetentionCutoffs): Promise<Record<keyof RetentionCutoffs, number>> {
  const tables = ["rollup_minute", "rollup_hour", "rollup_day"] as const;
  const results = await db.batch([
    ...tables.map((t) => db.prepare(`DELETE FROM ${t} WHERE bucket < ?1`).bind(cutoffs[t])),
    db.prepare("DELETE FROM seen_events WHERE ts < ?1").bind(cutoffs.seen_events),
  ]);
  const changes = results.map((r) => r.meta.changes ?? 0);
  return { rollup_minute: changes[0]!, rollup_hour: changes[1]!, rollup_day: changes[2]!, seen_events: changes[3]! };
}

/** When the published snapshot was generated, from its KV metadata (listed, so the value is not read); null when none is published. */
export async function readSnapshotGeneratedAt(kv: KVNamespace): Promise<number | null> {
  const { keys } = await kv.list<{ generatedAt?: number }>({ prefix: SNAPSHOT_KV_KEY, limit: 1 });
  const generatedAt = keys.find((k) => k.name === SNAPSHOT_KV_KEY)?.metadata?.generatedAt;
  return typeof generatedAt === "number" ? generatedAt : null;
}
