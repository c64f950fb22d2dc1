import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { SNAPSHOT_KV_KEY, SNAPSHOT_VERSION_KV_KEY, defaultSettings, type Snapshot } from "../../schema";
import { PoolCache } from "../../gateway/storage/snapshot-cache";
import { publishSnapshot } from "../../stats-consumer/storage/snapshot-store";

/**
 * An isolate's periodic check of the snapshot reads the small version key and
 * downloads the snapshot — which grows with the pool — only when it moved.
 */

/** The snapshot's KV namespace, recording which keys are read. */
function recording(kv: KVNamespace) {
  const reads: string[] = [];
  const wrapped = {
    get: (key: string, options: unknown) => (reads.push(key), kv.get(key, options as KVNamespaceGetOptions<"text">)),
    getWithMetadata: (key: string, options: unknown) => (reads.push(key), kv.getWithMetadata(key, options as KVNamespaceGetOptions<"text">)),
  } as unknown as KVNamespace;
  return { reads, kv: wrapped };
}

const snapshotOf = (version: number): Snapshot => ({
  version,
  generatedAt: version,
  upstreams: [],
  keys: [],
  clientKeys: [],
  settings: defaultSettings,
  prices: [],
});

describe("the snapshot check", () => {
  it("reads only the version key while the snapshot is unchanged, and the snapshot once it moved", async () => {
    const before = await env.DB.prepare("SELECT value FROM meta WHERE name = 'snapshot_published_version'").first<number>("value");
    const base = Number(before ?? 0) + 5_000;
    try {
      expect(await publishSnapshot(env.DB, env.SNAPSHOT, snapshotOf(base))).toBe(true);
      expect(await env.SNAPSHOT.get(SNAPSHOT_VERSION_KV_KEY)).toBe(String(base));
      const { reads, kv } = recording(env.SNAPSHOT);
      const cache = new PoolCache();
      const pending: Promise<unknown>[] = [];
      const waitUntil = (p: Promise<unknown>) => void pending.push(p);
      const t0 = Date.now();

      expect((await cache.load(kv, t0, waitUntil)).snapshot.version).toBe(base);
      expect(reads).toContain(SNAPSHOT_KV_KEY);

      // Checks while nothing changed: the version key, never the snapshot.
      for (const later of [3_000, 6_000, 9_000]) {
        reads.length = 0;
        await cache.load(kv, t0 + later, waitUntil);
        await Promise.all(pending.splice(0));
        expect(reads, `check at +${later} ms`).toContain(SNAPSHOT_VERSION_KV_KEY);
        expect(reads, `check at +${later} ms`).not.toContain(SNAPSHOT_KV_KEY);
      }

      // A new version: the next check downloads it.
      expect(await publishSnapshot(env.DB, env.SNAPSHOT, snapshotOf(base + 1))).toBe(true);
      reads.length = 0;
      await cache.load(kv, t0 + 12_000, waitUntil);
      await Promise.all(pending.splice(0));
      expect(reads.indexOf(SNAPSHOT_VERSION_KV_KEY)).toBeGreaterThanOrEqual(0);
      expect(reads.indexOf(SNAPSHOT_KV_KEY)).toBeGreaterThan(reads.indexOf(SNAPSHOT_VERSION_KV_KEY));
      expect((await cache.load(kv, t0 + 12_001, waitUntil)).snapshot.version).toBe(base + 1);
    } finally {
      await env.SNAPSHOT.delete(SNAPSHOT_KV_KEY);
      await env.SNAPSHOT.delete(SNAPSHOT_VERSION_KV_KEY);
      await env.DB.prepare("UPDATE meta SET value = ?1 WHERE name = 'snapshot_published_version'")
        .bind(before ?? 0)
        .run();
    }
  });
});
