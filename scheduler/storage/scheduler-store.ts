import { HEALTH_FACT_COLUMNS, healthFactsFromRow, parseStoredSettings, type ProviderKindId, type RetentionCutoffs, type Settings } from "../../schema";
import type { ProbeCandidate } from "../logic/probe-plan";
import type { ProbeTarget } from "../probe";

export async function readSettings(db: D1Database): Promise<Settings> {
  const row = await db.prepare("SELECT value FROM settings WHERE id = 1").first<{ value: string }>();
  return parseStoredSettings(row?.value ?? null);
}

/**
 * Deletes rollup rows and dedupe ids past their horizons, in one transaction;
 * the only write the scheduler makes to the consumer's projections.
 */
export async function pruneProjections(db: D1Database, cutoffs: RetentionCutoffs): Promise<Record<keyof RetentionCutoffs, number>> {
  const tables = ["rollup_minute", "rollup_hour", "rollup_pool_hour", "rollup_day"] as const;
  const results = await db.batch([
    ...tables.map((t) => db.prepare(`DELETE FROM ${t} WHERE bucket < ?1`).bind(cutoffs[t])),
    db.prepare("DELETE FROM seen_events WHERE ts < ?1").bind(cutoffs.seen_events),
  ]);
  const changes = results.map((r) => r.meta.changes ?? 0);
  return { rollup_minute: changes[0]!, rollup_hour: changes[1]!, rollup_pool_hour: changes[2]!, rollup_day: changes[3]!, seen_events: changes[4]! };
}

/** When the snapshot last written to KV was generated (the consumer records it in D1); null when none was. */
export async function readSnapshotGeneratedAt(db: D1Database): Promise<number | null> {
  const row = await db.prepare("SELECT value FROM meta WHERE name = 'snapshot_published_generated_at'").first<{ value: number }>();
  return row && row.value > 0 ? row.value : null;
}

/** Every key with its upstream and health facts, for planning probes. */
export async function readProbeCandidates(db: D1Database): Promise<(ProbeCandidate & ProbeTarget)[]> {
  const { results } = await db
    .prepare(
      `SELECT k.id, k.enabled, k.secret_enc, u.base_url, u.kind, ${HEALTH_FACT_COLUMNS}, h.last_probe_ts
       FROM keys k JOIN upstreams u ON u.id = k.upstream_id LEFT JOIN key_health h ON h.key_id = k.id
       WHERE u.enabled = 1`,
    )
    .all<Record<string, unknown>>();
  return results.map((r) => ({
    keyId: String(r.id),
    enabled: r.enabled === 1,
    facts: healthFactsFromRow(r),
    lastProbeTs: Number(r.last_probe_ts ?? 0),
    baseUrl: String(r.base_url),
    kind: String(r.kind) as ProviderKindId,
    secretEnc: String(r.secret_enc),
  }));
}
