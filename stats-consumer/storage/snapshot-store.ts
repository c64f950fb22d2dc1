import { HEALTH_FACT_COLUMNS, SNAPSHOT_KV_KEY, healthFactsFromRow, parseStoredSettings, snapshotSchema, type HealthFacts, type Settings, type Snapshot } from "../../schema";
import type { PoolRows } from "../logic/build-snapshot";

/** The success rate in the snapshot covers this much recent traffic. */
export const SUCCESS_RATE_WINDOW_MS = 60 * 60_000;

/** Reads configuration, health facts and recent success counts, and takes the next snapshot version, in one transaction. */
export async function readPoolRows(db: D1Database, now: number): Promise<{ rows: PoolRows; version: number }> {
  const [upstreams, keys, clientKeys, settings, version] = await db.batch<Record<string, unknown>>([
    db.prepare("SELECT id, name, base_url, kind, models, aliases, enabled FROM upstreams"),
    db.prepare(
      `SELECT k.id, k.upstream_id, k.secret_enc, k.weight, k.models, k.enabled, ${HEALTH_FACT_COLUMNS},
              r.successes, r.judged
       FROM keys k
       LEFT JOIN key_health h ON h.key_id = k.id
       LEFT JOIN (
         SELECT key_id, SUM(successes) AS successes, SUM(attempts - client_error - aborted) AS judged
         FROM rollup_minute WHERE bucket >= ?1 GROUP BY key_id
       ) r ON r.key_id = k.id`,
    ).bind(now - SUCCESS_RATE_WINDOW_MS),
    db.prepare("SELECT id, name, hash, models, rpm_limit, tpm_limit, expires_at, enabled FROM client_keys"),
    db.prepare("SELECT value FROM settings WHERE id = 1"),
    db.prepare("UPDATE meta SET value = value + 1 WHERE name = 'snapshot_version' RETURNING value"),
  ]);
  return {
    rows: {
      upstreams: upstreams!.results as PoolRows["upstreams"],
      keys: keys!.results as PoolRows["keys"],
      clientKeys: clientKeys!.results as PoolRows["clientKeys"],
      settings: (settings!.results[0]?.value as string | undefined) ?? null,
    },
    version: Number(version!.results[0]!.value),
  };
}

/** The pool's settings (defaults where none are stored). */
export async function readSettings(db: D1Database): Promise<Settings> {
  const row = await db.prepare("SELECT value FROM settings WHERE id = 1").first<{ value: string }>();
  return parseStoredSettings(row?.value ?? null);
}

/**
 * Writes the snapshot to KV unless a newer version has been written already
 * (checked and recorded in D1, which serialises concurrent consumers); the
 * version and generation time ride in the KV metadata so readers can skip an
 * unchanged value. The generation time is recorded once the write succeeded,
 * so a failed write leaves the snapshot looking stale to the scheduler.
 */
export async function publishSnapshot(db: D1Database, kv: KVNamespace, snapshot: Snapshot): Promise<boolean> {
  const claimed = await db
    .prepare("UPDATE meta SET value = ?1 WHERE name = 'snapshot_published_version' AND value < ?1")
    .bind(snapshot.version)
    .run();
  if ((claimed.meta.changes ?? 0) !== 1) return false;
  await kv.put(SNAPSHOT_KV_KEY, JSON.stringify(snapshot), { metadata: { version: snapshot.version, generatedAt: snapshot.generatedAt } });
  await db.prepare("UPDATE meta SET value = ?1 WHERE name = 'snapshot_published_generated_at' AND value < ?1").bind(snapshot.generatedAt).run();
  return true;
}

/**
 * Health facts and admin state of the given keys (none read when there are
 * none), for deciding whether their state changed, and the version last
 * published, in one round trip.
 */
export async function readKeyFacts(db: D1Database, keyIds: string[]): Promise<{ facts: Map<string, { enabled: boolean; facts: HealthFacts }>; publishedVersion: number }> {
  const readVersion = db.prepare("SELECT value FROM meta WHERE name = 'snapshot_published_version'");
  const readFacts = () =>
    db
      .prepare(
        `SELECT k.id, k.enabled, ${HEALTH_FACT_COLUMNS}
         FROM keys k LEFT JOIN key_health h ON h.key_id = k.id WHERE k.id IN (SELECT value FROM json_each(?1))`,
      )
      .bind(JSON.stringify(keyIds));
  const [version, rows] = await db.batch<Record<string, number | string | null>>(keyIds.length > 0 ? [readVersion, readFacts()] : [readVersion]);
  return {
    facts: new Map((rows?.results ?? []).map((r) => [String(r.id), { enabled: r.enabled === 1, facts: healthFactsFromRow(r) }])),
    publishedVersion: Number(version!.results[0]?.value ?? 0),
  };
}

/** The published snapshot itself, or null when there is none. */
export async function readPublishedSnapshot(kv: KVNamespace): Promise<Snapshot | null> {
  const raw = await kv.get(SNAPSHOT_KV_KEY, "json");
  const parsed = snapshotSchema.safeParse(raw);
  return parsed.success ? parsed.data : null;
}

/** When the snapshot was last claimed for publishing (epoch ms). */
export async function readPublishClaim(db: D1Database): Promise<number> {
  const row = await db.prepare("SELECT value FROM meta WHERE name = 'snapshot_published_at'").first<{ value: number }>();
  return row?.value ?? 0;
}

/**
 * Claims the right to publish at `now` if nobody has in the last `intervalMs`;
 * D1 serialises the conditional update, so concurrent consumers cannot both win.
 */
export async function claimPublish(db: D1Database, now: number, intervalMs: number): Promise<boolean> {
  const result = await db
    .prepare("UPDATE meta SET value = ?1 WHERE name = 'snapshot_published_at' AND value <= ?2")
    .bind(now, now - intervalMs)
    .run();
  return (result.meta.changes ?? 0) === 1;
}
