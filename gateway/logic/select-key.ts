import {
  NEARLY_SPENT,
  effectiveLimits,
  type ClientUsage,
  type KeyUsage,
  type Limits,
  type Snapshot,
  type SnapshotKey,
  type SnapshotUpstream,
} from "../../schema";
import { headroom, type Need } from "./capacity";
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
  /** Each key's limits in force (its own over its upstream's), or null when it has none configured. */
  limits: (Limits | null)[];
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

/** The pool's usage against its keys' limits as the consumer last counted it, when it was counted. */
export interface UsageView {
  at: number;
  /** By key id (a Map, or the published columns read in place). */
  keys: Pick<ReadonlyMap<string, KeyUsage>, "get" | "has" | "size">;
  /** Client keys with quotas, as counted (absent: none). */
  clients?: Map<string, ClientUsage>;
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
  /** The pool's usage against limits, when the consumer has published one. */
  usage?: UsageView | null;
  /** What this request needs of a key's windows (its token estimate), asked only of a key that has token limits. */
  need?: () => Need;
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
  const limitsOf = (key: SnapshotKey): Limits | null => {
    const limits = effectiveLimits(upstreams.get(key.upstreamId)?.limits ?? {}, key.limits ?? {});
    return limits.rpm !== undefined || limits.rpd !== undefined || limits.tpm !== undefined || limits.tpd !== undefined ? limits : null;
  };
  const anyGroup = groups.get("[]");
  const anyLists = anyGroup ? [keyList(anyGroup.keys, limitsOf)] : [];
  const listsByModel = new Map<string, KeyList[]>();
  for (const [signature, group] of groups) {
    if (signature === "[]") continue;
    const list = keyList(group.keys, limitsOf);
    for (const model of new Set(group.models)) {
      const lists = listsByModel.get(model);
      if (lists) lists.push(list);
      else listsByModel.set(model, [list]);
    }
  }
  const byModel = new Map([...listsByModel].map(([model, lists]) => [model, candidates([...lists, ...anyLists])]));
  return { upstreams, anyModel: candidates(anyLists), byModel };
}

function keyList(keys: SnapshotKey[], limitsOf: (key: SnapshotKey) => Limits | null): KeyList {
  const hot = new Float64Array(keys.length * 2);
  keys.forEach((key, p) => {
    hot[2 * p] = key.weight * Math.max(key.successRate, 0.01);
    hot[2 * p + 1] = key.state === "cooling" && key.coolingUntil !== null ? key.coolingUntil : 0;
  });
  return { keys, hot, limits: keys.map(limitsOf) };
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

const NO_NEED: Need = { tokens: 0 };

/** How long a request waits, at most, for the answer of a key's trial request before looking again. */
const TRIAL_WAIT_MS = 250;

/**
 * The key's headroom, when anything is known of its capacity: limits configured,
 * the pool's usage, or the provider's word seen here; null when nothing is.
 */
function capacityOf(list: KeyList, q: number, ctx: SelectionContext) {
  const limits = list.limits[q];
  const capacity = ctx.observations.capacity;
  // Most keys in most pools have no limit and no reading: decided without touching the key's object.
  if (!limits && !capacity.learnedAny() && !(ctx.usage && ctx.usage.keys.size > 0)) return null;
  const id = list.keys[q]!.id;
  const usage = ctx.usage?.keys.get(id);
  if (!limits && !usage && !capacity.knows(id)) return null;
  const learned = capacity.learned(id);
  const word = {
    requests: newest(learned.requests, usage?.requests ?? null),
    tokens: newest(learned.tokens, usage?.tokens ?? null),
  };
  // The token estimate walks the prompt: made only when a token window could turn on it.
  const tokensTight =
    word.tokens !== null && word.tokens.remaining !== null && (!word.tokens.limit || word.tokens.remaining < word.tokens.limit * NEARLY_SPENT);
  const need = limits?.tpm !== undefined || limits?.tpd !== undefined || tokensTight ? (ctx.need?.() ?? NO_NEED) : NO_NEED;
  return headroom(limits ?? {}, usage, ctx.usage?.at ?? 0, word, capacity, id, need, ctx.now);
}

function newest<T extends { at: number }>(a: T | null, b: T | null): T | null {
  return !a ? b : !b ? a : a.at >= b.at ? a : b;
}

/** When the key at position `q` of `list` can take traffic (epoch ms): after its snapshot cooling, this isolate's block and its capacity's next free moment; never if tried. */
function availableAt(list: KeyList, q: number, ctx: SelectionContext): number {
  let until = list.hot[2 * q + 1]!;
  if (ctx.excluded.size > 0 || ctx.observations.blocksAny()) {
    const id = list.keys[q]!.id;
    if (ctx.excluded.has(id)) return Infinity;
    const avoided = ctx.includeAvoided ? 0 : (ctx.observations.avoidedUntilOf(id, ctx.now) ?? 0);
    until = Math.max(ctx.observations.blockedUntilOf(id, ctx.now) ?? 0, avoided, until);
    // On trial with its one request out: soon, once that is answered.
    if (ctx.observations.trialBusy(id)) until = Math.max(until, ctx.now + TRIAL_WAIT_MS);
  }
  const capacity = capacityOf(list, q, ctx);
  return capacity ? Math.max(until, capacity.freesAt) : until;
}

/**
 * Preference for a key: admin weight × smoothed success rate, shared with its
 * requests in flight here, and scaled by the share of its tightest window still
 * free — so keys with limits run down together instead of one after another.
 */
function score(list: KeyList, q: number, ctx: SelectionContext): number {
  let s = list.hot[2 * q]!;
  // Reading the key's id touches its object, a cache miss in a large pool: only when needed.
  if (ctx.observations.hasInflight()) s /= 1 + ctx.observations.inflight(list.keys[q]!.id);
  const capacity = capacityOf(list, q, ctx);
  return capacity ? s * Math.max(capacity.fraction, 0.01) : s;
}

function isAvailable(c: Candidates, p: number, ctx: SelectionContext): boolean {
  const j = listIndex(c, p);
  return availableAt(c.lists[j]!, p - c.starts[j]!, ctx) <= ctx.now;
}

const SAMPLE_TRIES = 8;

/**
 * Picks a key for `model` by the power of two choices: two different random
 * available candidates, the better-scored one winning with probability
 * proportional to its score. Cost does not grow with the pool unless most candidates are unavailable.
 */
export function selectKey(index: PoolIndex, model: string, ctx: SelectionContext): SnapshotKey | null {
  const c = index.byModel.get(model) ?? index.anyModel;
  const n = c.total;
  if (n === 0) return null;
  let a = -1;
  let b = -1;
  for (let t = 0; t < SAMPLE_TRIES && b < 0; t++) {
    const p = Math.floor(ctx.random() * n);
    // Two different candidates: the same one twice is no choice, and would take a key its score disfavours.
    if (p === a || !isAvailable(c, p, ctx)) continue;
    if (a < 0) a = p;
    else b = p;
  }
  if (b < 0) {
    // Most candidates are unavailable: fall back to an exact scan of the few that are.
    const open: number[] = [];
    for (let p = 0; p < n; p++) if (isAvailable(c, p, ctx)) open.push(p);
    if (open.length === 0) return null;
    const i = Math.floor(ctx.random() * open.length);
    a = open[i]!;
    // A second, different one: any of the others, uniformly.
    b = open.length === 1 ? a : open[(i + 1 + Math.floor(ctx.random() * (open.length - 1))) % open.length]!;
  }
  const ja = listIndex(c, a);
  const jb = listIndex(c, b);
  const sa = score(c.lists[ja]!, a - c.starts[ja]!, ctx);
  const sb = score(c.lists[jb]!, b - c.starts[jb]!, ctx);
  return ctx.random() * (sa + sb) < sa ? c.lists[ja]!.keys[a - c.starts[ja]!]! : c.lists[jb]!.keys[b - c.starts[jb]!]!;
}

/** Whether the isolate counts what it sends with `key`: it has limits, or the pool or this isolate knows a provider's word on it. */
export function tracksCapacity(index: PoolIndex, key: SnapshotKey, ctx: SelectionContext): boolean {
  const limits = effectiveLimits(index.upstreams.get(key.upstreamId)?.limits ?? {}, key.limits ?? {});
  if (limits.rpm !== undefined || limits.rpd !== undefined || limits.tpm !== undefined || limits.tpd !== undefined) return true;
  return (ctx.usage?.keys.has(key.id) ?? false) || ctx.observations.capacity.knows(key.id);
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
