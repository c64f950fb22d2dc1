import type { Snapshot, SnapshotKey, SnapshotUpstream } from "../../schema";
import type { LocalObservations } from "./local-observations";

/** A snapshot prepared for selection: built once per snapshot, shared by all requests. */
export interface PoolIndex {
  keys: SnapshotKey[];
  upstreams: Map<string, SnapshotUpstream>;
  /** Indexes of usable keys that serve any model. */
  anyModel: Int32Array;
  /** Indexes of usable keys that list the model explicitly. */
  byModel: Map<string, Int32Array>;
  /** Per-model candidate lists, memoised on first use. */
  memo: Map<string, Int32Array>;
  /**
   * The hot fields by key index, side by side in one typed array so a sample
   * reads one cache line instead of scattered objects (it keeps picks/s flat as
   * pools grow): at 2i the admin weight × smoothed success rate, at 2i + 1 the
   * snapshot's cooling end (0: none).
   */
  hot: Float64Array;
}

export interface SelectionContext {
  now: number;
  /** Uniform in [0, 1); injected so tests are deterministic. */
  random: () => number;
  /** Keys already tried by this request. */
  excluded: ReadonlySet<string>;
  observations: LocalObservations;
  /** Take keys this isolate only avoids (recent 5xx or network errors) as well. */
  includeAvoided?: boolean;
}

/** Key states that may carry traffic (cooling only once its time has passed). */
const SERVING_STATES = new Set(["active", "cooling"]);

/** Groups the snapshot's usable keys by the models they serve. */
export function buildPoolIndex(snapshot: Snapshot): PoolIndex {
  const upstreams = new Map(snapshot.upstreams.map((u) => [u.id, u]));
  const anyModel: number[] = [];
  const lists = new Map<string, number[]>();
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
      const list = lists.get(model);
      if (list) list.push(i);
      else lists.set(model, [i]);
    }
  });
  const hot = new Float64Array(snapshot.keys.length * 2);
  snapshot.keys.forEach((key, i) => {
    hot[2 * i] = key.weight * Math.max(key.successRate, 0.01);
    hot[2 * i + 1] = key.state === "cooling" && key.coolingUntil !== null ? key.coolingUntil : 0;
  });
  const byModel = new Map([...lists].map(([model, list]) => [model, Int32Array.from(list)]));
  return { keys: snapshot.keys, upstreams, anyModel: Int32Array.from(anyModel), byModel, memo: new Map(), hot };
}

/** Indexes of the keys that may serve `model`, ignoring momentary health. */
export function candidatesFor(index: PoolIndex, model: string): Int32Array {
  let list = index.memo.get(model);
  if (!list) {
    const explicit = index.byModel.get(model) ?? new Int32Array(0);
    list = explicit.length === 0 ? index.anyModel : index.anyModel.length === 0 ? explicit : Int32Array.from([...explicit, ...index.anyModel]);
    // Bound the memo: an attacker naming random models must not grow it forever.
    if (index.memo.size < 10_000) index.memo.set(model, list);
  }
  return list;
}

/** When the key at index `i` can take traffic (epoch ms): after its snapshot cooling and this isolate's block; never if tried. */
function availableAt(index: PoolIndex, i: number, ctx: SelectionContext): number {
  const snapshotUntil = index.hot[2 * i + 1]!;
  if (ctx.excluded.size === 0 && !ctx.observations.blocksAny()) return snapshotUntil;
  const id = index.keys[i]!.id;
  if (ctx.excluded.has(id)) return Infinity;
  const avoided = ctx.includeAvoided ? 0 : (ctx.observations.avoidedUntilOf(id, ctx.now) ?? 0);
  return Math.max(ctx.observations.blockedUntilOf(id, ctx.now) ?? 0, avoided, snapshotUntil);
}

/** Preference for a key: admin weight × smoothed success rate, shared with its requests in flight here. */
function score(index: PoolIndex, i: number, ctx: SelectionContext): number {
  // Reading the key's id touches its object, a cache miss in a large pool: only when needed.
  if (!ctx.observations.hasInflight()) return index.hot[2 * i]!;
  return index.hot[2 * i]! / (1 + ctx.observations.inflight(index.keys[i]!.id));
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
  let a = -1;
  let b = -1;
  for (let t = 0; t < SAMPLE_TRIES && b < 0; t++) {
    const i = candidates[Math.floor(ctx.random() * candidates.length)]!;
    if (availableAt(index, i, ctx) > ctx.now) continue;
    if (a < 0) a = i;
    else b = i;
  }
  if (b < 0) {
    // Most candidates are unavailable: fall back to an exact scan of the few that are.
    const available = candidates.filter((i) => availableAt(index, i, ctx) <= ctx.now);
    if (available.length === 0) return null;
    if (available.length === 1) return index.keys[available[0]!]!;
    a = available[Math.floor(ctx.random() * available.length)]!;
    b = available[Math.floor(ctx.random() * available.length)]!;
  }
  const sa = score(index, a, ctx);
  const sb = score(index, b, ctx);
  return index.keys[ctx.random() * (sa + sb) < sa ? a : b]!;
}

/** Whether some enabled upstream offers `model`: lists it or an alias of it, or lists nothing (serves any). */
function modelOffered(index: PoolIndex, model: string): boolean {
  for (const u of index.upstreams.values()) {
    if (u.enabled && (u.models.length === 0 || u.models.includes(model) || Object.hasOwn(u.aliases, model))) return true;
  }
  return false;
}

/**
 * Why nothing was selected: no upstream offers the model ("unknown"), no key
 * serves it now ("none"), or every key for it is cooling until a time.
 */
export function explainNoKey(index: PoolIndex, model: string, ctx: SelectionContext): { kind: "unknown" } | { kind: "none" } | { kind: "cooling"; until: number } {
  let until = Infinity;
  const candidates = candidatesFor(index, model);
  if (candidates.length === 0 && !modelOffered(index, model)) return { kind: "unknown" };
  for (const i of candidates) until = Math.min(until, availableAt(index, i, ctx));
  return Number.isFinite(until) ? { kind: "cooling", until } : { kind: "none" };
}
