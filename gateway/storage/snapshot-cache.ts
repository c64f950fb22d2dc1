import { SNAPSHOT_KV_KEY, defaultSettings, snapshotSchema, type Snapshot } from "../../schema";
import { buildPoolIndex, type PoolIndex } from "../logic/select-key";

/** A snapshot with the lookups the request path needs, built once per version. */
export interface LoadedPool {
  snapshot: Snapshot;
  index: PoolIndex;
  clientKeysByHash: Map<string, Snapshot["clientKeys"][number]>;
  loadedAt: number;
}

/** The pool before the consumer has published anything: no keys, no clients. */
export const EMPTY_SNAPSHOT: Snapshot = {
  version: 0,
  generatedAt: 0,
  upstreams: [],
  keys: [],
  clientKeys: [],
  settings: defaultSettings,
};

function prepare(snapshot: Snapshot, now: number): LoadedPool {
  return {
    snapshot,
    index: buildPoolIndex(snapshot),
    clientKeysByHash: new Map(snapshot.clientKeys.map((c) => [c.hash, c])),
    loadedAt: now,
  };
}

/** How often an isolate looks for a newer snapshot; it serves the one it has meanwhile. */
export const SNAPSHOT_REFRESH_MS = 2_000;

let current: LoadedPool | null = null;
let refreshing: Promise<void> | null = null;

async function refresh(kv: KVNamespace, now: number): Promise<void> {
  // cacheTtl lets the edge cache the value between isolates' checks (30 s is KV's minimum).
  const { value, metadata } = await kv.getWithMetadata<{ version?: number }>(SNAPSHOT_KV_KEY, { type: "text", cacheTtl: 30 });
  if (current && typeof metadata?.version === "number" && metadata.version <= current.snapshot.version) {
    current.loadedAt = now;
    return;
  }
  if (value === null) {
    current ??= prepare(EMPTY_SNAPSHOT, now);
    current.loadedAt = now;
    return;
  }
  const parsed = snapshotSchema.safeParse(JSON.parse(value));
  if (!parsed.success) {
    console.error("keypool: the KV snapshot failed validation; keeping the previous one");
    if (current) current.loadedAt = now;
    else current = prepare(EMPTY_SNAPSHOT, now);
    return;
  }
  // A snapshot never replaces a newer one (KV reads can be stale across locations).
  if (!current || parsed.data.version >= current.snapshot.version) current = prepare(parsed.data, now);
  else current.loadedAt = now;
}

function refreshOnce(kv: KVNamespace, now: number): Promise<void> {
  refreshing ??= refresh(kv, now)
    .catch((err: unknown) => console.error(`keypool: snapshot refresh failed: ${err instanceof Error ? err.message : "error"}`))
    .finally(() => {
      refreshing = null;
    });
  return refreshing;
}

/**
 * The pool to serve this request from. Only the isolate's first request waits on
 * KV; after that a stale snapshot is served while a refresh runs in the background.
 */
export async function loadPool(kv: KVNamespace, now: number, waitUntil: (p: Promise<unknown>) => void): Promise<LoadedPool> {
  if (!current) {
    await refreshOnce(kv, now);
    return current ?? prepare(EMPTY_SNAPSHOT, now);
  }
  if (now - current.loadedAt >= SNAPSHOT_REFRESH_MS) waitUntil(refreshOnce(kv, now));
  return current;
}

/** Forgets the isolate's cached snapshot, so the next request reads KV again (used by tests). */
export function resetPoolCache(): void {
  current = null;
  refreshing = null;
}
