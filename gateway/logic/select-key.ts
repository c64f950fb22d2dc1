import type { Snapshot, SnapshotKey, SnapshotUpstream } from "../../schema";
import type { LocalObservations } from "./local-observations";

/**
 * Keys side by side with their hot fields in the same order: at 2p the admin
 * weight × smoothed success rate of `keys[p]`, at 2p + 1 its snapshot cooling
 * end (0: none). A sample reads one cache line; only the winner's key object is
 * touched. This keeps picks/s nearly flat as pools grow past the CPU caches.
 */
export interface KeyList {
  keys: SnapshotKey[];
  hot: Float64Array;
}

/**
 * The keys that may serve one model: one or more lists (keys that share a model
 * list are one list, shared by all its models; keys serving any model are one
 * more), sampled as one range of `total` positions, list j starting at `starts[j]`.
 */
export interface Candidates {
  lists: KeyList[];
  starts: number[];
  total: number;
}

/** A snapshot prepared for selection: built once per snapshot, shared by all requests. */
export interface PoolIndex {
  upstreams: Map<string, SnapshotUpstream>;
  /** The candidates of a model no key lists: the keys serving any model. */
  anyModel: Candidates;
  /** The candidates of each model some key lists (its own list or its upstream's). */
  byModel: Map<string, Candidates>;
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

/**
 * Groups the snapshot's usable keys by the models they serve. Each key is in one
 * list, so memory grows with the pool, not with pool × models.
 */
export function buildPoolIndex(snapshot: Snapshot): PoolIndex {
  const upstreams = new Map(snapshot.upstreams.map((u) => [u.id, u]));
  // Keys by the model list they serve (`[]` for any model): most pools have a few.
  const groups = new Map<string, { models: string[]; keys: SnapshotKey[] }>();
  for (const key of snapshot.keys) {
    const upstream = upstreams.get(key.upstreamId);
    if (!upstream?.enabled || !SERVING_STATES.has(key.state)) continue;
    // A key may narrow its upstream's models; an upstream with no list serves any model.
    const models = key.models.length > 0 ? key.models : upstream.models.length > 0 ? [...upstream.models, ...Object.keys(upstream.aliases)] : [];
    const signature = JSON.stringify(models);
    const group = groups.get(signature);
    if (group) group.keys.push(key);
    else groups.set(signature, { models, keys: [key] });
  }
  const anyGroup = groups.get("[]");
  const anyLists = anyGroup ? [keyList(anyGroup.keys)] : [];
  const listsByModel = new Map<string, KeyList[]>();
  for (const [signature, group] of groups) {
    if (signature === "[]") continue;
    const list = keyList(group.keys);
    for (const model of new Set(group.models)) {
      const lists = listsByModel.get(model);
      if (lists) lists.push(list);
      else listsByModel.set(model, [list]);
    }
  }
  const byModel = new Map([...listsByModel].map(([model, lists]) => [model, candidates([...lists, ...anyLists])]));
  return { upstreams, anyModel: candidates(anyLists), byModel };
}

function keyList(keys: SnapshotKey[]): KeyList {
  const hot = new Float64Array(keys.length * 2);
  keys.forEach((key, p) => {
    hot[2 * p] = key.weight * Math.max(key.successRate, 0.01);
    hot[2 * p + 1] = key.state === "cooling" && key.coolingUntil !== null ? key.coolingUntil : 0;
  });
  return { keys, hot };
}

function candidates(lists: KeyList[]): Candidates {
  const starts: number[] = [];
  let total = 0;
  for (const list of lists) {
    starts.push(total);
    total += list.keys.length;
  }
  return { lists, starts, total };
}

/** The list holding position `p` of `c`: by binary search over the starts (no step for a single list). */
function listIndex(c: Candidates, p: number): number {
  let lo = 0;
  let hi = c.lists.length - 1;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if (c.starts[mid]! <= p) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}

/** When the key at position `q` of `list` can take traffic (epoch ms): after its snapshot cooling and this isolate's block; never if tried. */
function availableAt(list: KeyList, q: number, ctx: SelectionContext): number {
  const snapshotUntil = list.hot[2 * q + 1]!;
  if (ctx.excluded.size === 0 && !ctx.observations.blocksAny()) return snapshotUntil;
  const id = list.keys[q]!.id;
  if (ctx.excluded.has(id)) return Infinity;
  const avoided = ctx.includeAvoided ? 0 : (ctx.observations.avoidedUntilOf(id, ctx.now) ?? 0);
  return Math.max(ctx.observations.blockedUntilOf(id, ctx.now) ?? 0, avoided, snapshotUntil);
}

/** Preference for a key: admin weight × smoothed success rate, shared with its requests in flight here. */
function score(list: KeyList, q: number, ctx: SelectionContext): number {
  // Reading the key's id touches its object, a cache miss in a large pool: only when needed.
  if (!ctx.observations.hasInflight()) return list.hot[2 * q]!;
  return list.hot[2 * q]! / (1 + ctx.observations.inflight(list.keys[q]!.id));
}

function isAvailable(c: Candidates, p: number, ctx: SelectionContext): boolean {
  const j = listIndex(c, p);
  return availableAt(c.lists[j]!, p - c.starts[j]!, ctx) <= ctx.now;
}

const SAMPLE_TRIES = 8;

/**
 * Picks a key for `model` by the power of two choices: two random available
 * candidates, the better-scored one winning with probability proportional to its
 * score. Cost does not grow with the pool unless most candidates are unavailable.
 */
export function selectKey(index: PoolIndex, model: string, ctx: SelectionContext): SnapshotKey | null {
  const c = index.byModel.get(model) ?? index.anyModel;
  const n = c.total;
  if (n === 0) return null;
  let a = -1;
  let b = -1;
  for (let t = 0; t < SAMPLE_TRIES && b < 0; t++) {
    const p = Math.floor(ctx.random() * n);
    if (!isAvailable(c, p, ctx)) continue;
    if (a < 0) a = p;
    else b = p;
  }
  if (b < 0) {
    // Most candidates are unavailable: fall back to an exact scan of the few that are.
    const open: number[] = [];
    for (let p = 0; p < n; p++) if (isAvailable(c, p, ctx)) open.push(p);
    if (open.length === 0) return null;
    a = open[Math.floor(ctx.random() * open.length)]!;
    b = open.length === 1 ? a : open[Math.floor(ctx.random() * open.length)]!;
  }
  const ja = listIndex(c, a);
  const jb = listIndex(c, b);
  const sa = score(c.lists[ja]!, a - c.starts[ja]!, ctx);
  const sb = score(c.lists[jb]!, b - c.starts[jb]!, ctx);
  return ctx.random() * (sa + sb) < sa ? c.lists[ja]!.keys[a - c.starts[ja]!]! : c.lists[jb]!.keys[b - c.starts[jb]!]!;
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
export function explainNoKey(
  index: PoolIndex,
  model: string,
  ctx: SelectionContext,
): { kind: "unknown" } | { kind: "none" } | { kind: "cooling"; until: number } {
  let until = Infinity;
  const c = index.byModel.get(model) ?? index.anyModel;
  if (c.total === 0 && !modelOffered(index, model)) return { kind: "unknown" };
  for (const list of c.lists) for (let q = 0; q < list.keys.length; q++) until = Math.min(until, availableAt(list, q, ctx));
  return Number.isFinite(until) ? { kind: "cooling", until } : { kind: "none" };
}
