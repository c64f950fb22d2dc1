import { SNAPSHOT_KV_KEY, parseStoredSettings, type Settings, type Snapshot } from "../../schema";
import type { PoolRows } from "../logic/build-snapshot";

/** Reads configuration and health and takes the next snapshot version, in one transaction. */
export async function readPoolRows(db: D1Database): Promise<{ rows: PoolRows; version: number }> {
  const [upstreams, keys, clientKeys, settings, version] = await db.batch<Record<string, unknown>>([
    db.prepare("SELECT id, name, base_url, kind, models, aliases, enabled FROM upstreams"),
    db.prepare(
      `SELECT k.id, k.upstream_id, k.secret_enc, k.weight, k.models, k.enabled, h.state, h.cooling_until, h.success_rate
       FROM keys k LEFT JOIN key_health h ON h.key_id = k.id`,
    ),
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
 * Writes the snapshot to KV unless a newer version is already there; the version
 * and generation time ride in the metadata so readers can skip an unchanged value.
 */
export async function publishSnapshot(kv: KVNamespace, snapshot: Snapshot): Promise<boolean> {
  const { keys } = await kv.list<{ version?: number }>({ prefix: SNAPSHOT_KV_KEY, limit: 1 });
  const published = keys.find((k) => k.name === SNAPSHOT_KV_KEY)?.metadata?.version;
  if (typeof published === "number" && published > snapshot.version) return false;
  await kv.put(SNAPSHOT_KV_KEY, JSON.stringify(snapshot), { metadata: { version: snapshot.version, generatedAt: snapshot.generatedAt } });
  return true;
}
