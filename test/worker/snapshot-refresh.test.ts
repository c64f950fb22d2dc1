import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import {
  LEGACY_SNAPSHOT_KV_KEY,
  SNAPSHOT_KV_KEY,
  SNAPSHOT_PART_PREFIX,
  SNAPSHOT_VERSION_KV_KEY,
  defaultSettings,
  headOf,
  keyConfigOf,
  type Snapshot,
  type SnapshotKey,
} from "../../schema";
import { PoolCache } from "../../gateway/storage/snapshot-cache";
import { publishHead } from "../../stats-consumer/storage/snapshot-store";

/**
 * An isolate's periodic check reads the small version key, then the head when
 * it moved, and downloads a key part only when the head names one it does not
 * hold: a change of key states costs the head, not the pool.
 */

/** The snapshot's KV namespace, recording which keys are read. */
function recording(kv: KVNamespace) {
  // The snapshot's keys only (the check reads the pool's usage too).
  const reads: string[] = [];
  const note = (key: string) => void (key.startsWith("snapshot:") && reads.push(key));
  const wrapped = {
    get: (key: string, options: unknown) => (note(key), kv.get(key, options as KVNamespaceGetOptions<"text">)),
    getWithMetadata: (key: string, options: unknown) => (note(key), kv.getWithMetadata(key, options as KVNamespaceGetOptions<"text">)),
  } as unknown as KVNamespace;
  return { reads, kv: wrapped };
}

const key = (id: string): SnapshotKey => ({
  id,
  upstreamId: "u-refresh",
  secret: `v1.${id}.sealed`,
  weight: 1,
  models: [],
  state: "active",
  coolingUntil: null,
  successRate: 1,
});

const snapshotOf = (version: number, keys: SnapshotKey[]): Snapshot => ({
  version,
  generatedAt: version,
  upstreams: [{ id: "u-refresh", name: "refresh", baseUrl: "https://refresh.test/v1", kind: "custom", models: [], aliases: {}, enabled: true }],
  keys,
  clientKeys: [],
  settings: defaultSettings,
  prices: [],
});

/** Stores `parts` (lists of keys) under names of this test's own and publishes the head over them. */
async function publish(version: number, parts: Record<string, SnapshotKey[]>): Promise<boolean> {
  for (const [name, keys] of Object.entries(parts)) await env.SNAPSHOT.put(SNAPSHOT_PART_PREFIX + name, JSON.stringify(keys.map(keyConfigOf)));
  const keys = Object.values(parts).flat();
  return publishHead(
    env.DB,
    env.SNAPSHOT,
    headOf(
      snapshotOf(version, keys),
      Object.keys(parts).map((n) => SNAPSHOT_PART_PREFIX + n),
    ),
  );
}

const part = (name: string) => SNAPSHOT_PART_PREFIX + name;

describe("the snapshot check", () => {
  it("reads the version key while nothing changed, the head when states changed, and only the parts it lacks", async () => {
    const before = await env.DB.prepare("SELECT value FROM meta WHERE name = 'snapshot_published_version'").first<number>("value");
    const base = Number(before ?? 0) + 5_000;
    try {
      expect(await publish(base, { "refresh-a": [key("k1"), key("k2")], "refresh-b": [key("k3")] })).toBe(true);
      expect(await env.SNAPSHOT.get(SNAPSHOT_VERSION_KV_KEY)).toBe(String(base));
      const { reads, kv } = recording(env.SNAPSHOT);
      const cache = new PoolCache();
      const pending: Promise<unknown>[] = [];
      const waitUntil = (p: Promise<unknown>) => void pending.push(p);
      const t0 = Date.now();
      const check = async (at: number) => {
        reads.length = 0;
        await cache.load(kv, t0 + at, waitUntil);
        await Promise.all(pending.splice(0));
        return (await cache.load(kv, t0 + at + 1, waitUntil)).snapshot;
      };

      const first = await cache.load(kv, t0, waitUntil);
      expect(first.snapshot.version).toBe(base);
      expect(first.snapshot.keys.map((k) => k.id).sort()).toEqual(["k1", "k2", "k3"]);
      expect(reads).toEqual(expect.arrayContaining([SNAPSHOT_KV_KEY, part("refresh-a"), part("refresh-b")]));

      // Checks while nothing changed: the version key, never the head or a part.
      for (const later of [3_000, 6_000]) {
        await check(later);
        expect(reads, `check at +${later} ms`).toEqual([SNAPSHOT_VERSION_KV_KEY]);
      }

      // A key cooled: the head carries its state; no part is read again.
      const cooled = { ...key("k2"), state: "cooling" as const, coolingUntil: t0 + 60_000, successRate: 0.5 };
      const states = headOf(snapshotOf(base + 1, [key("k1"), cooled, key("k3")]), [part("refresh-a"), part("refresh-b")]);
      expect(await publishHead(env.DB, env.SNAPSHOT, states)).toBe(true);
      let snapshot = await check(9_000);
      expect(reads).toEqual([SNAPSHOT_VERSION_KV_KEY, SNAPSHOT_KV_KEY]);
      expect(snapshot.version).toBe(base + 1);
      expect(snapshot.keys.find((k) => k.id === "k2")).toEqual(cooled);
      expect(snapshot.keys.find((k) => k.id === "k1")).toEqual(key("k1"));

      // A key added to one part: that part (under its new name) is the only one read.
      expect(await publish(base + 2, { "refresh-a": [key("k1"), key("k2")], "refresh-b2": [key("k3"), key("k4")] })).toBe(true);
      snapshot = await check(12_000);
      expect(reads).toEqual([SNAPSHOT_VERSION_KV_KEY, SNAPSHOT_KV_KEY, part("refresh-b2")]);
      expect(snapshot.keys.map((k) => k.id).sort()).toEqual(["k1", "k2", "k3", "k4"]);

      // A head naming a part that is not in KV: the isolate keeps the snapshot it has.
      const broken = headOf(snapshotOf(base + 3, [key("k1")]), [part("refresh-missing")]);
      expect(await publishHead(env.DB, env.SNAPSHOT, broken)).toBe(true);
      snapshot = await check(15_000);
      expect(snapshot.version).toBe(base + 2);
      expect(snapshot.keys).toHaveLength(4);
    } finally {
      for (const name of ["refresh-a", "refresh-b", "refresh-b2"]) await env.SNAPSHOT.delete(part(name));
      await env.SNAPSHOT.delete(SNAPSHOT_KV_KEY);
      await env.SNAPSHOT.delete(SNAPSHOT_VERSION_KV_KEY);
      await env.DB.prepare("UPDATE meta SET value = ?1 WHERE name = 'snapshot_published_version'")
        .bind(before ?? 0)
        .run();
    }
  });

  it("serves a format-1 snapshot while no head has been written (a consumer from before the split)", async () => {
    const head = await env.SNAPSHOT.get(SNAPSHOT_KV_KEY);
    if (head !== null) await env.SNAPSHOT.delete(SNAPSHOT_KV_KEY);
    try {
      await env.SNAPSHOT.put(LEGACY_SNAPSHOT_KV_KEY, JSON.stringify(snapshotOf(7, [key("legacy-1")])));
      const cache = new PoolCache();
      const pool = await cache.load(env.SNAPSHOT, Date.now(), () => {});
      expect(pool.snapshot.version).toBe(7);
      expect(pool.snapshot.keys.map((k) => k.id)).toEqual(["legacy-1"]);
    } finally {
      await env.SNAPSHOT.delete(LEGACY_SNAPSHOT_KV_KEY);
      if (head !== null) await env.SNAPSHOT.put(SNAPSHOT_KV_KEY, head);
    }
  });
});
