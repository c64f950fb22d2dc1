import type { Snapshot, SnapshotKey, SnapshotUpstream } from "../../schema";
import type { LocalObservations } from "./local-observations";

/** A snapshot prepared for selection: built once per snapshot, shared by all requests. */
export interface PoolIndex {
  keys: SnapshotKey[];
  upstreams: Map<string, SnapshotUpstream>;
  /** Indexes of usable keys that serve any model. */
  anyModel: number[];
  /** Indexes of usable keys that list the model explicitly. */
  byModel: Map<string, number[]>;
  /** Per-model candidate lists, memoised on first use. */
  memo: Map<string, number[]>;
}

export interface SelectionContext {
  now: number;
  /** Uniform in [0, 1); injected so tests are deterministic. */
  random: () => number;
  /** Keys already tried by this request. */
  excluded: ReadonlySet<string>;
  observations: LocalObservations;
}

/** Key states that may carry traffic (cooling only once its time has passed). */
const SERVING_STATES = new Set(["active", "cooling"]);

/** Groups the snapshot's usable keys by the models they serve. */
export function buildPoolIndex(snapshot: Snapshot): PoolIndex {
  const upstreams = new Map(snapshot.upstreams.map((u) => [u.id, u]));
  const anyModel: number[] = [];
  const byModel = new Map<string, number[]>();
  snapshot.keys.forEach((key, i) => {
    const upstream = upstreams.get(key.upstreamId);
    if (!upstream?.enabled || !SERVING_STATES.has(key.state)) return;
    // A key may narrow its upstream's models; an upstream with no list serves any model.
    const models = key.models.length > 0 ? key.models : upstream.models.length > 0 ? [...upstream.models, ...Object.keys(upstream.aliases)] : [];
    if (models.length === 0) {
      anyModel.push(i);
      return;
    }
    for (const model of models) {
      const list = byModel.get(model);
      if (list) list.push(i);
      else byModel.set(model, [i]);
    }
  });
  return { keys: snapshot.keys, upstreams, anyModel, byModel, memo: new Map() };
}

/** Indexes of the keys that may serve `model`, ignoring momentary health. */
export function candidatesFor(index: PoolIndex, model: string): number[] {
  let list = index.memo.get(model);
  if (!list) {
    const explicit = index.byModel.get(model) ?? [];
    list = explicit.length === 0 ? index.anyModel : index.anyModel.length === 0 ? explicit : [...explicit, ...index.anyModel];
    // Bound the memo: an attacker naming random models must not grow it forever.
    if (index.memo.size < 10_000) index.memo.set(model, list);
  }
  return list;
}

/** The earliest epoch ms at which some key for `model` stops cooling, or null if none will. */
function availableAt(key: SnapshotKey, ctx: SelectionContext): number {
  if (ctx.excluded.has(key.id)) return Infinity;
  const local = ctx.observations.blockedUntilOf(key.id, ctx.now) ?? 0;
  const snap = key.state === "cooling" && key.coolingUntil !== null ? key.coolingUntil : 0;
  return Math.max(local, snap);
}

/** Preference for a key: admin weight × smoothed success rate, shared with its requests in flight. */
function score(key: SnapshotKey, ctx: SelectionContext): number {
  return (key.weight * Math.max(key.successRate, 0.01)) / (1 + ctx.observations.inflight(key.id));
}

const SAMPLE_TRIES = 8;

/**
 * Picks a key for `model` by the power of two choices: two random available
 * candidates, the better-scored one winning with probability proportional to its
 * score. Cost does not grow with the pool unless most candidates are unavailable.
 */
export function selectKey(index: PoolIndex, model: string, ctx: SelectionContext): SnapshotKey | null {
  const candidates = candidatesFor(index, model);
  if (candidates.length === 0) return null;
  const picked: SnapshotKey[] = [];
  for (let t = 0; t < SAMPLE_TRIES && picked.length < 2; t++) {
    const key = index.keys[candidates[Math.floor(ctx.random() * candidates.length)]!]!;
    if (availableAt(key, ctx) <= ctx.now) picked.push(key);
  }
  if (picked.length < 2) {
    // Most candidates are unavailable: fall back to an exact scan of the few that are.
    const available = candidates.map((i) => index.keys[i]!).filter((k) => availableAt(k, ctx) <= ctx.now);
    if (available.length === 0) return null;
    if (available.length === 1) return available[0]!;
    picked.length = 0;
    picked.push(available[Math.floor(ctx.random() * available.length)]!, available[Math.floor(ctx.random() * available.length)]!);
  }
  const [a, b] = picked as [SnapshotKey, SnapshotKey];
  const sa = score(a, ctx);
  const sb = score(b, ctx);
  return ctx.random() * (sa + sb) < sa ? a : b;
}

/** Why nothing was selected: no key serves the model at all, or all are cooling until a time. */
export function explainNoKey(index: PoolIndex, model: string, ctx: SelectionContext): { kind: "none" } | { kind: "cooling"; until: number } {
  let until = Infinity;
  for (const i of candidatesFor(index, model)) until = Math.min(until, availableAt(index.keys[i]!, ctx));
  return Number.isFinite(until) ? { kind: "cooling", until } : { kind: "none" };
}
