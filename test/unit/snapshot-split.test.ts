import { describe, expect, it } from "vitest";
import {
  KEYS_PER_PART,
  defaultSettings,
  headOf,
  keyConfigOf,
  keyFromConfig,
  partCount,
  splitKeys,
  withState,
  type Snapshot,
  type SnapshotKey,
} from "../../schema";
import { SnapshotReader } from "../../storage/snapshot-reader";

const key = (id: string, extra: Partial<SnapshotKey> = {}): SnapshotKey => ({
  id,
  upstreamId: "u",
  secret: `v1.${id}`,
  weight: 1,
  models: [],
  state: "active",
  coolingUntil: null,
  successRate: 1,
  ...extra,
});

const ids = (n: number, prefix = "k") => Array.from({ length: n }, (_, i) => `${prefix}-${i}-${(i * 7919).toString(36)}`);

describe("splitting the snapshot's keys into parts", () => {
  it("uses a power of two parts of at most about KEYS_PER_PART keys each", () => {
    expect([0, 1, KEYS_PER_PART, KEYS_PER_PART + 1, 10_000, 100_000].map(partCount)).toEqual([1, 1, 1, 2, 8, 64]);
    const parts = splitKeys(ids(100_000).map((id) => key(id)));
    expect(parts).toHaveLength(64);
    const sizes = parts.map((p) => p.length);
    expect(sizes.reduce((a, b) => a + b, 0)).toBe(100_000);
    // Spread by a hash of the id: no part far from the mean (1,562.5).
    expect(Math.max(...sizes)).toBeLessThan(1_800);
    expect(Math.min(...sizes)).toBeGreaterThan(1_350);
  });

  it("changes one part when a key is added or removed, unless the part count changes", () => {
    const keys = ids(10_000).map((id) => key(id));
    const before = splitKeys(keys).map((p) => JSON.stringify(p));
    const added = splitKeys([...keys, key("k-new")]).map((p) => JSON.stringify(p));
    expect(added.filter((p) => !before.includes(p))).toHaveLength(1);
    const removed = splitKeys(keys.filter((_, i) => i !== 4_321)).map((p) => JSON.stringify(p));
    expect(removed.filter((p) => !before.includes(p))).toHaveLength(1);
    // A state change is no part's business.
    const cooled = splitKeys(keys.map((k, i) => (i === 17 ? { ...k, state: "cooling" as const, coolingUntil: 5, successRate: 0.5 } : k))).map((p) =>
      JSON.stringify(p),
    );
    expect(cooled).toEqual(before);
  });

  it("round-trips every key through its part and the head's states", () => {
    const keys = [
      key("a"),
      key("b", { state: "cooling", coolingUntil: 123, successRate: 0.75, limits: { rpm: 10 } }),
      key("c", { state: "dead" }),
      key("d", { state: "disabled" }),
      key("e", { state: "disabled", successRate: 0.5 }),
      key("f", { successRate: 0.9, models: ["m1"], weight: 3 }),
    ];
    const snapshot: Snapshot = { version: 3, generatedAt: 4, upstreams: [], keys, clientKeys: [], settings: defaultSettings, prices: [] };
    const parts = splitKeys(keys);
    const head = headOf(snapshot, ["p"]);
    expect(Object.keys(head.states).sort()).toEqual(["b", "c", "e", "f"]);
    const assembled = parts.flat().map((config) => withState(keyFromConfig(config), head.states[config.id]));
    expect(assembled.sort((x, y) => (x.id < y.id ? -1 : 1))).toEqual(keys);
    // No state, no secret in plain text, nothing but configuration in a part.
    expect(Object.keys(parts.flat().find((c) => c.id === "b")!).sort()).toEqual(["id", "limits", "models", "secret", "upstreamId", "weight"]);
  });
});

describe("a reader of the snapshot in parts", () => {
  it("reads only the parts it lacks, and keeps the objects of keys that moved to a new part unchanged", async () => {
    const texts = new Map<string, string>();
    const reads: string[] = [];
    const kv = { get: async (name: string) => (reads.push(name), texts.get(name) ?? null) };
    const put = (name: string, keys: SnapshotKey[]) => texts.set(name, JSON.stringify(keys.map(keyConfigOf)));
    const snapshot = (version: number, keys: SnapshotKey[]): Snapshot => ({
      version,
      generatedAt: version,
      upstreams: [],
      keys,
      clientKeys: [],
      settings: defaultSettings,
      prices: [],
    });
    const [a, b, c] = [key("a"), key("b", { limits: { rpm: 5 } }), key("c")];
    put("p1", [a, b]);
    put("p2", [c]);
    const reader = new SnapshotReader();
    const first = await reader.assemble(kv, headOf(snapshot(1, [a, b, c]), ["p1", "p2"]));
    expect(reads.sort()).toEqual(["p1", "p2"]);

    // Every key moves to a new part; b's weight changes; a and c are the same objects as before.
    const b2 = { ...b, weight: 2 };
    put("p3", [c, a]);
    put("p4", [b2]);
    reads.length = 0;
    const second = await reader.assemble(kv, headOf(snapshot(2, [c, a, b2]), ["p3", "p4"]));
    expect(reads.sort()).toEqual(["p3", "p4"]);
    const byId = (s: Snapshot) => new Map(s.keys.map((k) => [k.id, k]));
    expect(byId(second).get("a")).toBe(byId(first).get("a"));
    expect(byId(second).get("c")).toBe(byId(first).get("c"));
    expect(byId(second).get("b")).not.toBe(byId(first).get("b"));
    expect(byId(second).get("b")).toEqual(b2);

    // A head of states over the same parts reads nothing.
    reads.length = 0;
    const third = await reader.assemble(kv, headOf(snapshot(3, [c, { ...a, state: "dead" }, b2]), ["p3", "p4"]));
    expect(reads).toEqual([]);
    expect(byId(third).get("a")?.state).toBe("dead");
    expect(byId(third).get("c")).toBe(byId(first).get("c"));
  });
});
