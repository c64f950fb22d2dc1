import {
  LEGACY_SNAPSHOT_KV_KEY,
  SNAPSHOT_KV_KEY,
  keyFromConfig,
  withState,
  snapshotHeadSchema,
  snapshotKeyPartSchema,
  snapshotSchema,
  type Snapshot,
  type SnapshotHead,
  type SnapshotKey,
  type SnapshotKeyConfig,
} from "../schema";

/** What reading the snapshot needs of its KV namespace (a `KVNamespace` is one). */
export interface SnapshotKv {
  get(key: string, options: { type: "text"; cacheTtl?: number }): Promise<string | null>;
}

/** Whether `key` (as `keyFromConfig` made it) has exactly the configuration `config` holds. */
function sameConfig(key: SnapshotKey, config: SnapshotKeyConfig): boolean {
  return (
    key.secret === config.secret &&
    key.upstreamId === config.upstreamId &&
    key.weight === config.weight &&
    (key.state === "disabled") === (config.disabled === true) &&
    JSON.stringify(key.models) === JSON.stringify(config.models) &&
    JSON.stringify(key.limits) === JSON.stringify(config.limits)
  );
}

/** Parts read at once: a Worker has six connections open at a time. */
const PARALLEL_READS = 6;

/**
 * Reads the snapshot from KV as the consumer stores it (see `snapshotHeadSchema`),
 * holding the key parts it has read: a new head costs one small read, and a
 * part is downloaded only when the head names one this reader does not hold
 * (parts never change under a name).
 */
export class SnapshotReader {
  /** Each part held, as its keys in the default state (disabled ones disabled). */
  private parts = new Map<string, SnapshotKey[]>();

  /** The head in KV, or the format-1 snapshot when no head was written yet, or null when neither is there (or valid). */
  async readHead(kv: SnapshotKv, cacheTtl?: number): Promise<{ head: SnapshotHead } | { legacy: Snapshot } | null> {
    const text = await kv.get(SNAPSHOT_KV_KEY, { type: "text", ...(cacheTtl ? { cacheTtl } : {}) });
    if (text !== null) {
      const head = snapshotHeadSchema.safeParse(JSON.parse(text));
      if (!head.success) throw new Error("the snapshot's head in KV failed validation");
      return { head: head.data };
    }
    const legacy = await kv.get(LEGACY_SNAPSHOT_KV_KEY, { type: "text", ...(cacheTtl ? { cacheTtl } : {}) });
    if (legacy === null) return null;
    const parsed = snapshotSchema.safeParse(JSON.parse(legacy));
    if (!parsed.success) throw new Error("the format-1 snapshot in KV failed validation");
    return { legacy: parsed.data };
  }

  /**
   * The snapshot `head` describes: its parts (read from KV when not held) with
   * the head's key states. Parts the head does not name are let go. Throws when
   * a part is missing or invalid, so the caller keeps the snapshot it had.
   */
  async assemble(kv: SnapshotKv, head: SnapshotHead): Promise<Snapshot> {
    const missing = head.keyParts.filter((name) => !this.parts.has(name));
    const read = new Map<string, SnapshotKey[]>();
    // A key that moved to another part unchanged keeps its object: the pool held and the one
    // assembled share it, so even a refresh where every part is new does not hold two pools.
    const held = missing.length > 0 && this.parts.size > 0 ? new Map([...this.parts.values()].flat().map((k) => [k.id, k])) : null;
    const reuse = (config: SnapshotKeyConfig): SnapshotKey => {
      const key = held?.get(config.id);
      return key && sameConfig(key, config) ? key : keyFromConfig(config);
    };
    for (let i = 0; i < missing.length; i += PARALLEL_READS) {
      await Promise.all(
        missing.slice(i, i + PARALLEL_READS).map(async (name) => {
          // KV's default edge cache (60 s), not a longer one: a part read at a location before its write
          // arrived there would have its absence cached as long, and the isolate kept on its old snapshot.
          const text = await kv.get(name, { type: "text" });
          if (text === null) throw new Error(`the snapshot's key part ${name} is not in KV`);
          const part = snapshotKeyPartSchema.safeParse(JSON.parse(text));
          if (!part.success) throw new Error(`the snapshot's key part ${name} failed validation`);
          read.set(name, part.data.map(reuse));
        }),
      );
    }
    const parts = new Map<string, SnapshotKey[]>();
    for (const name of head.keyParts) parts.set(name, (this.parts.get(name) ?? read.get(name))!);
    const keys: SnapshotKey[] = [];
    for (const part of parts.values()) {
      // Most keys are in the default state: the object held is shared by every version that shows it so.
      for (const key of part) keys.push(withState(key, head.states[key.id]));
    }
    if (keys.length !== head.keyCount) throw new Error(`the snapshot's key parts hold ${keys.length} keys, its head says ${head.keyCount}`);
    this.parts = parts;
    return {
      version: head.version,
      generatedAt: head.generatedAt,
      upstreams: head.upstreams,
      keys,
      clientKeys: head.clientKeys,
      settings: head.settings,
      prices: head.prices,
    };
  }

  /** Holds parts this isolate wrote itself (the consumer), so it need not read them back. */
  hold(names: string[], parts: SnapshotKeyConfig[][]): void {
    const held = new Map<string, SnapshotKey[]>();
    names.forEach((name, i) => held.set(name, this.parts.get(name) ?? parts[i]!.map(keyFromConfig)));
    this.parts = held;
  }

  /** Lets go of every part (the next assemble reads them all). */
  forget(): void {
    this.parts.clear();
  }
}

/** The snapshot in KV, read whole (a reader of its own: nothing held); null when none was published. */
export async function readSnapshot(kv: SnapshotKv): Promise<Snapshot | null> {
  const reader = new SnapshotReader();
  const read = await reader.readHead(kv);
  if (read === null) return null;
  return "head" in read ? reader.assemble(kv, read.head) : read.legacy;
}
