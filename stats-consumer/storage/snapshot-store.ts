import { SNAPSHOT_KV_KEY, SNAPSHOT_VERSION_KV_KEY, snapshotSchema, type HealthFacts, type Snapshot } from "../../schema";
import { selectAllClientKeys, type ClientKeyRow } from "../../storage/client-keys";
import { keyFactsFromRows, selectKeyFacts, selectKeysForSnapshot, type KeySnapshotRow } from "../../storage/keys";
import { SUCCESS_RATE_WINDOW_MS } from "../../storage/rollups";
import { priceBookOf, selectPriceHistory, selectSpendSince } from "../../storage/prices";
import { selectSettings } from "../../storage/settings";
import { claimPublishedVersion, recordPublishedGeneratedAt, selectPublishedVersion, takeSnapshotVersion } from "../../storage/snapshot-meta";
import { selectAllUpstreams, type UpstreamRow } from "../../storage/upstreams";
import type { PoolRows } from "../logic/build-snapshot";

/** Reads configuration, health facts and recent success counts, and takes the next snapshot version, in one transaction. */
export async function readPoolRows(db: D1Database, now: number): Promise<{ rows: PoolRows; version: number }> {
  const [upstreams, keys, clientKeys, settings, prices, since, version] = await db.batch<Record<string, unknown>>([
    selectAllUpstreams(db),
    selectKeysForSnapshot(db, now - SUCCESS_RATE_WINDOW_MS),
    selectAllClientKeys(db),
    selectSettings(db),
    selectPriceHistory(db),
    selectSpendSince(db),
    takeSnapshotVersion(db),
  ]);
  return {
    rows: {
      upstreams: upstreams!.results as unknown as UpstreamRow[],
      keys: keys!.results as unknown as KeySnapshotRow[],
      clientKeys: clientKeys!.results as unknown as ClientKeyRow[],
      settings: (settings!.results[0]?.value as string | undefined) ?? null,
      prices: priceBookOf(prices!.results, since!.results),
    },
    version: Number(version!.results[0]!.value),
  };
}

/**
 * Writes the snapshot to KV unless a newer version has been written already
 * (checked and recorded in D1, which serialises concurrent consumers); the
 * version and generation time ride in the KV metadata, and the version alone in
 * a small key of its own, so readers can skip an unchanged value without
 * downloading it. The generation time is recorded once the write succeeded,
 * so a failed write leaves the snapshot looking stale to the scheduler.
 */
export async function publishSnapshot(db: D1Database, kv: KVNamespace, snapshot: Snapshot): Promise<boolean> {
  if (!(await claimPublishedVersion(db, snapshot.version))) return false;
  const metadata = { version: snapshot.version, generatedAt: snapshot.generatedAt };
  await kv.put(SNAPSHOT_KV_KEY, JSON.stringify(snapshot), { metadata });
  // After the snapshot: a reader that sees the new version finds the snapshot written.
  await kv.put(SNAPSHOT_VERSION_KV_KEY, String(snapshot.version), { metadata });
  await recordPublishedGeneratedAt(db, snapshot.generatedAt);
  return true;
}

/**
 * Health facts and admin state of the given keys (none read when there are
 * none), for deciding whether their state changed, and the version last
 * published, in one round trip.
 */
export async function readKeyFacts(
  db: D1Database,
  keyIds: string[],
): Promise<{ facts: Map<string, { enabled: boolean; facts: HealthFacts }>; publishedVersion: number }> {
  const [version, rows] = await db.batch<Record<string, unknown>>(
    keyIds.length > 0 ? [selectPublishedVersion(db), selectKeyFacts(db, keyIds)] : [selectPublishedVersion(db)],
  );
  return { facts: keyFactsFromRows(rows?.results ?? []), publishedVersion: Number(version!.results[0]?.value ?? 0) };
}

/** The published snapshot itself, or null when there is none. */
export async function readPublishedSnapshot(kv: KVNamespace): Promise<Snapshot | null> {
  const raw = await kv.get(SNAPSHOT_KV_KEY, "json");
  const parsed = snapshotSchema.safeParse(raw);
  return parsed.success ? parsed.data : null;
}
