/**
 * Micro-benchmarks of the gateway's hot logic, bundled by scripts/bench.mjs and
 * run in Node: key selection and snapshot loading. Data in, figures out.
 */
import { defaultSettings, snapshotSchema, type Snapshot } from "../schema";
import { LocalObservations } from "../gateway/logic/local-observations";
import { buildPoolIndex, selectKey, type UsageView } from "../gateway/logic/select-key";

/** A snapshot with `n` keys over 10 upstreams serving any model, varied weights and success rates. */
export function makeSnapshot(n: number): Snapshot {
  return {
    version: 1,
    generatedAt: Date.now(),
    upstreams: Array.from({ length: 10 }, (_, i) => ({
      id: `u${i}`,
      name: `u${i}`,
      baseUrl: "https://u.test/v1",
      kind: "custom" as const,
      models: [],
      aliases: {},
      enabled: true,
    })),
    keys: Array.from({ length: n }, (_, i) => ({
      id: `k${i}`,
      upstreamId: `u${i % 10}`,
      secret: `v1.${"A".repeat(16)}.${"B".repeat(64)}`,
      weight: 1 + (i % 3),
      models: [],
      state: i % 50 === 0 ? ("cooling" as const) : ("active" as const),
      coolingUntil: i % 50 === 0 ? Date.now() + 60_000 : null,
      successRate: 0.5 + ((i * 7919) % 50) / 100,
    })),
    clientKeys: [],
    settings: defaultSettings,
    prices: [],
  };
}

/** Picks per second of `selectKey` over a pool of `n` keys, for about `ms` milliseconds. */
export function selectionRate(n: number, ms: number): number {
  return selectionRateOver(makeSnapshot(n), "any-model", ms);
}

/** Picks per second of `selectKey` for `model` over the pool of `snapshot`, for about `ms` milliseconds. */
export function selectionRateOver(snapshot: Snapshot, model: string, ms: number, usage: UsageView | null = null): number {
  const index = buildPoolIndex(snapshot);
  const observations = new LocalObservations();
  const ctx = { now: Date.now(), random: Math.random, excluded: new Set<string>(), observations, usage };
  let picks = 0;
  const started = performance.now();
  while (performance.now() - started < ms) {
    for (let i = 0; i < 1_000; i++) if (selectKey(index, model, ctx) !== null) picks++;
  }
  return picks / ((performance.now() - started) / 1000);
}

/** The pool of an `n`-key snapshot's KV text, parsed, validated and indexed: what an isolate holds. */
export function loadPool(text: string) {
  return buildPoolIndex(snapshotSchema.parse(JSON.parse(text)));
}

/** Milliseconds to turn the KV text of an `n`-key snapshot into a servable pool: parse, validate, index. */
export function snapshotLoadMs(n: number, runs: number): number[] {
  const text = JSON.stringify(makeSnapshot(n));
  const times: number[] = [];
  for (let r = 0; r < runs; r++) {
    const started = performance.now();
    const snapshot = snapshotSchema.parse(JSON.parse(text));
    buildPoolIndex(snapshot);
    times.push(performance.now() - started);
  }
  return times;
}
