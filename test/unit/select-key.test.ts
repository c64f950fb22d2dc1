import { describe, expect, it } from "vitest";
import { defaultSettings, type Snapshot, type SnapshotKey } from "../../schema";
import { LocalObservations } from "../../gateway/logic/local-observations";
import { buildPoolIndex, explainNoKey, selectKey } from "../../gateway/logic/select-key";
import { seeded } from "../shared/seeded";

function key(id: string, extra: Partial<SnapshotKey> = {}): SnapshotKey {
  return { id, upstreamId: "u1", secret: "v1.x.y", weight: 1, models: [], state: "active", coolingUntil: null, successRate: 1, ...extra };
}

function snapshot(keys: SnapshotKey[], upstreamModels: string[] = []): Snapshot {
  return {
    version: 1,
    generatedAt: 0,
    upstreams: [{ id: "u1", name: "u", baseUrl: "https://u.test/v1", kind: "custom", models: upstreamModels, aliases: {}, enabled: true }],
    keys,
    clientKeys: [],
    settings: defaultSettings,
    prices: [],
  };
}

function pickCounts(snap: Snapshot, picks: number, observations = new LocalObservations(), now = 1_000) {
  const index = buildPoolIndex(snap);
  const random = seeded(42);
  const counts = new Map<string, number>();
  for (let i = 0; i < picks; i++) {
    const k = selectKey(index, "m", { now, random, excluded: new Set(), observations });
    if (k) counts.set(k.id, (counts.get(k.id) ?? 0) + 1);
  }
  return counts;
}

describe("selectKey", () => {
  it("spreads 10,000 picks over 10 equal keys at 10% ± 3% each", () => {
    const keys = Array.from({ length: 10 }, (_, i) => key(`k${i}`));
    const counts = pickCounts(snapshot(keys), 10_000);
    expect(counts.size).toBe(10);
    for (const n of counts.values()) {
      expect(n).toBeGreaterThanOrEqual(700);
      expect(n).toBeLessThanOrEqual(1300);
    }
  });

  it("gives a key with a 50% success rate clearly less traffic than a healthy one", () => {
    const keys = [key("sick", { successRate: 0.5 }), ...Array.from({ length: 4 }, (_, i) => key(`ok${i}`))];
    const counts = pickCounts(snapshot(keys), 10_000);
    const sick = counts.get("sick") ?? 0;
    const healthyAverage = [0, 1, 2, 3].reduce((n, i) => n + (counts.get(`ok${i}`) ?? 0), 0) / 4;
    expect(sick).toBeGreaterThan(0);
    expect(sick).toBeLessThan(healthyAverage * 0.8);
  });

  it("never picks a cooling, disabled, dead or locally blocked key", () => {
    const keys = [
      key("cooling", { state: "cooling", coolingUntil: 5_000 }),
      key("disabled", { state: "disabled" }),
      key("dead", { state: "dead" }),
      key("blocked"),
      key("good"),
    ];
    const observations = new LocalObservations();
    observations.block("blocked", 9_000);
    const counts = pickCounts(snapshot(keys), 1_000, observations, 1_000);
    expect([...counts.keys()]).toEqual(["good"]);
  });

  it("uses a cooling key again once its time has passed", () => {
    const counts = pickCounts(snapshot([key("cooling", { state: "cooling", coolingUntil: 5_000 })]), 10, new LocalObservations(), 6_000);
    expect(counts.get("cooling")).toBe(10);
  });

  it("only offers keys whose upstream or own list serves the model", () => {
    const snap = snapshot([key("narrow", { models: ["other"] }), key("wide")], ["m", "other"]);
    expect([...pickCounts(snap, 200).keys()]).toEqual(["wide"]);
  });

  it("draws from keys listing the model and keys serving any model alike", () => {
    const snap = snapshot([key("listed", { models: ["m"] }), key("any1"), key("any2"), key("other", { models: ["x"] })]);
    const counts = pickCounts(snap, 3_000);
    expect([...counts.keys()].sort()).toEqual(["any1", "any2", "listed"]);
    for (const n of counts.values()) expect(n).toBeGreaterThan(700);
  });

  it("spreads picks over keys with many different model lists, each list kept once", () => {
    const own = Array.from({ length: 5 }, (_, i) => key(`own${i}`, { models: ["m", `x${i}`] }));
    const snap = snapshot([...own, key("any1"), key("any2"), key("any3")]);
    const counts = pickCounts(snap, 8_000);
    expect(counts.size).toBe(8);
    for (const n of counts.values()) expect(n).toBeGreaterThan(600);
    // Lists are told apart exactly: a model name holding a newline is not two models.
    const odd = buildPoolIndex(snapshot([key("joined", { models: ["a\nb"] }), key("split", { models: ["a", "b"] })]));
    expect(odd.byModel.get("a")!.lists.flatMap((l) => l.keys.map((k) => k.id))).toEqual(["split"]);
    expect(odd.byModel.get("a\nb")!.lists.flatMap((l) => l.keys.map((k) => k.id))).toEqual(["joined"]);
    // Two models of one upstream share its list instead of each copying the keys.
    const index = buildPoolIndex(snapshot([key("a"), key("b")], ["m", "n"]));
    expect(index.byModel.get("m")!.lists[0]).toBe(index.byModel.get("n")!.lists[0]);
  });

  it("finds the one free key among many cooling ones, in either list", () => {
    const cooling = (id: string, extra: Partial<SnapshotKey> = {}) => key(id, { state: "cooling", coolingUntil: 9_000, ...extra });
    const many = (prefix: string, extra: Partial<SnapshotKey> = {}) => Array.from({ length: 200 }, (_, i) => cooling(`${prefix}${i}`, extra));
    const freeListed = snapshot([...many("a"), ...many("l", { models: ["m"] }), key("free", { models: ["m"] })]);
    expect([...pickCounts(freeListed, 50).entries()]).toEqual([["free", 50]]);
    const freeAny = snapshot([...many("l", { models: ["m"] }), key("free"), ...many("a")]);
    expect([...pickCounts(freeAny, 50).entries()]).toEqual([["free", 50]]);
  });

  it("explains an empty choice: nothing serves the model, or all are cooling until a time", () => {
    const observations = new LocalObservations();
    const ctx = { now: 1_000, random: seeded(1), excluded: new Set<string>(), observations };
    expect(explainNoKey(buildPoolIndex(snapshot([], [])), "m", ctx)).toEqual({ kind: "none" });
    const cooling = buildPoolIndex(snapshot([key("a", { state: "cooling", coolingUntil: 4_000 }), key("b", { state: "cooling", coolingUntil: 3_000 })]));
    expect(selectKey(cooling, "m", ctx)).toBeNull();
    expect(explainNoKey(cooling, "m", ctx)).toEqual({ kind: "cooling", until: 3_000 });
  });

  it("lets one request at a time try a key whose block ran out, until it is answered", () => {
    const observations = new LocalObservations();
    const index = buildPoolIndex(snapshot([key("a")]));
    const ctx = (now: number) => ({ now, random: seeded(5), excluded: new Set<string>(), observations });
    observations.block("a", 2_000);
    expect(selectKey(index, "m", ctx(1_500))).toBeNull();
    expect(selectKey(index, "m", ctx(2_001))?.id).toBe("a");
    const done = observations.begin("a", 2_002);
    // The trial request is out: the next one waits a moment for its answer instead of piling on.
    expect(selectKey(index, "m", ctx(2_002))).toBeNull();
    expect(explainNoKey(index, "m", ctx(2_002))).toEqual({ kind: "cooling", until: 2_252 });
    observations.answered("a");
    expect(selectKey(index, "m", ctx(2_003))?.id).toBe("a");
    done();
    // Unblocked keys are never on trial: any number may go at once.
    const other = observations.begin("a", 2_002);
    expect(selectKey(index, "m", ctx(2_004))?.id).toBe("a");
    other();
  });

  it("excludes keys this request already tried", () => {
    const index = buildPoolIndex(snapshot([key("a"), key("b")]));
    const ctx = { now: 1, random: seeded(3), excluded: new Set(["a"]), observations: new LocalObservations() };
    for (let i = 0; i < 50; i++) expect(selectKey(index, "m", ctx)?.id).toBe("b");
  });
});
