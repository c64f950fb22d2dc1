import { PriceBook, SNAPSHOT_VERSION_KV_KEY, USAGE_KV_KEY, defaultSettings, type Snapshot } from "../../schema";
import { SnapshotReader } from "../../storage/snapshot-reader";
import { buildPoolIndex, type PoolIndex, type UsageView } from "../logic/select-key";
import { parsePoolUsage } from "../logic/usage-view";

/** A snapshot with the lookups the request path needs, built once per version. */
export interface LoadedPool {
  snapshot: Snapshot;
  index: PoolIndex;
  clientKeysByHash: Map<string, Snapshot["clientKeys"][number]>;
  /** The prices the snapshot carries, for counting this isolate's own spend against client budgets. */
  prices: PriceBook;
  loadedAt: number;
  /** The pool's usage against its keys' limits, refreshed with the snapshot (null until the consumer publishes one). */
  usage: UsageView | null;
  /** The version of that usage. */
  usageVersion: number;
}

/** The pool before the consumer has published anything: no keys, no clients. */
const EMPTY_SNAPSHOT: Snapshot = {
  version: 0,
  generatedAt: 0,
  upstreams: [],
  keys: [],
  clientKeys: [],
  settings: defaultSettings,
  prices: [],
};

function prepare(snapshot: Snapshot, now: number): LoadedPool {
  return {
    snapshot,
    index: buildPoolIndex(snapshot),
    clientKeysByHash: new Map(snapshot.clientKeys.map((c) => [c.hash, c])),
    prices: PriceBook.fromSnapshot(snapshot.prices),
    loadedAt: now,
    usage: null,
    usageVersion: 0,
  };
}

/** The pool's usage as last published (the admin API's view of it), or null before the first. */
export async function readPoolUsage(kv: KVNamespace): Promise<UsageView | null> {
  const value = await kv.get(USAGE_KV_KEY, "text");
  return value === null ? null : (parsePoolUsage(value)?.view ?? null);
}

/** How often an isolate looks for a newer snapshot; it serves the one it has meanwhile. */
const SNAPSHOT_REFRESH_MS = 2_000;

/**
 * One isolate's copy of the KV snapshot. Only the isolate's first request waits
 * on KV; after that a stale snapshot is served while a refresh runs in the
 * background, and a snapshot never replaces a newer one (KV reads can be stale
 * across locations).
 */
export class PoolCache {
  private current: LoadedPool | null = null;
  private refreshing: Promise<void> | null = null;
  private readonly reader = new SnapshotReader();

  /** The pool to serve this request from. */
  async load(kv: KVNamespace, now: number, waitUntil: (p: Promise<unknown>) => void): Promise<LoadedPool> {
    if (!this.current) {
      await this.refreshOnce(kv, now);
      return this.current ?? prepare(EMPTY_SNAPSHOT, now);
    }
    if (now - this.current.loadedAt >= SNAPSHOT_REFRESH_MS) waitUntil(this.refreshOnce(kv, now));
    return this.current;
  }

  /** Drops the snapshot held, so the next request reads KV again. */
  forget(): void {
    this.current = null;
    this.refreshing = null;
    this.reader.forget();
  }

  private refreshOnce(kv: KVNamespace, now: number): Promise<void> {
    this.refreshing ??= this.refresh(kv, now)
      .catch((err: unknown) => console.error(`keypool: snapshot refresh failed: ${err instanceof Error ? err.message : "error"}`))
      .finally(() => {
        this.refreshing = null;
      });
    return this.refreshing;
  }

  private async refresh(kv: KVNamespace, now: number): Promise<void> {
    const [, usage] = await Promise.all([
      this.refreshSnapshot(kv, now),
      kv.getWithMetadata<{ version?: number }>(USAGE_KV_KEY, { type: "text", cacheTtl: 30 }),
    ]);
    this.takeUsage(usage.value, usage.metadata?.version);
  }

  /** Takes the pool's usage if it is newer than the one held (none held: any). */
  private takeUsage(value: string | null, version: number | undefined): void {
    const pool = this.current;
    if (!pool || value === null || (typeof version === "number" && version <= pool.usageVersion)) return;
    const usage = parsePoolUsage(value);
    if (!usage || usage.version < pool.usageVersion) return;
    pool.usage = usage.view;
    pool.usageVersion = usage.version;
  }

  private async refreshSnapshot(kv: KVNamespace, now: number): Promise<void> {
    const current = this.current;
    // The version key first: the snapshot grows with the pool, and most checks find it unchanged.
    // (None yet — a consumer from before it — means reading the snapshot as before.)
    if (current) {
      const published = await kv.get(SNAPSHOT_VERSION_KV_KEY, { type: "text", cacheTtl: 30 });
      if (published !== null && Number(published) <= current.snapshot.version) {
        current.loadedAt = now;
        return;
      }
    }
    // cacheTtl lets the edge cache the head between isolates' checks (30 s is KV's minimum).
    let read: Awaited<ReturnType<SnapshotReader["readHead"]>>;
    let snapshot: Snapshot;
    try {
      read = await this.reader.readHead(kv, 30);
      if (read === null) {
        this.current ??= prepare(EMPTY_SNAPSHOT, now);
        this.current.loadedAt = now;
        return;
      }
      if (current && ("head" in read ? read.head.version : read.legacy.version) <= current.snapshot.version) {
        current.loadedAt = now;
        return;
      }
      snapshot = "head" in read ? await this.reader.assemble(kv, read.head) : read.legacy;
    } catch (err) {
      console.error(`keypool: the KV snapshot could not be read (${err instanceof Error ? err.message : "error"}); keeping the previous one`);
      if (current) current.loadedAt = now;
      else this.current = prepare(EMPTY_SNAPSHOT, now);
      return;
    }
    // A new snapshot keeps the usage held (they are published apart).
    this.current = { ...prepare(snapshot, now), usage: current?.usage ?? null, usageVersion: current?.usageVersion ?? 0 };
  }
}
