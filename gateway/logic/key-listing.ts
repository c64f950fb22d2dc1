import { deriveKeyState, effectiveLimits, providerKinds, type HealthRules, type KeyFilter, type KeyState, type KeyView } from "../../schema";
import type { KeyLimitRow, KeyRow } from "../../storage/keys";
import { capacityFigures } from "./capacity-figures";
import type { UsageView } from "./select-key";

/** A key's state at `now`, its limits in force and its capacity as the pool's published usage counts it. */
export function keyStanding(
  r: KeyLimitRow,
  rules: HealthRules,
  usage: UsageView | null,
  now: number,
): Pick<KeyView, "state" | "coolingUntil" | "effectiveLimits" | "capacity"> {
  const health = deriveKeyState(r.facts, rules, now);
  const limits = effectiveLimits(r.upstreamLimits, r.limits);
  return {
    state: r.enabled ? health.state : "disabled",
    coolingUntil: r.enabled ? health.coolingUntil : null,
    effectiveLimits: limits,
    capacity: capacityFigures(limits, usage?.keys.get(r.id), r.readings, providerKinds[r.upstreamKind].rateLimitHeaders, now),
  };
}

/** The masked view of a key, with its state at `now` and its capacity as the pool's published usage counts it. */
export function toKeyView(r: KeyRow, rules: HealthRules, usage: UsageView | null, now: number): KeyView {
  const { state, coolingUntil, effectiveLimits, capacity } = keyStanding(r, rules, usage, now);
  return {
    id: r.id,
    upstreamId: r.upstreamId,
    masked: r.masked,
    weight: r.weight,
    models: r.models,
    enabled: r.enabled,
    state,
    coolingUntil,
    balance: r.balance,
    balanceCheckedAt: r.balanceTs || null,
    lastProbe: r.lastProbeTs ? { at: r.lastProbeTs, result: r.lastProbeResult } : null,
    lastError: r.lastErrorTs ? { at: r.lastErrorTs, message: r.lastError } : null,
    lastUsedAt: r.lastUsedAt || null,
    note: r.note,
    limits: r.limits,
    effectiveLimits,
    capacity,
    successRate: r.judgedLastHour > 0 ? r.successesLastHour / r.judgedLastHour : null,
    requestsToday: r.requestsToday,
    tokensToday: r.tokensToday,
    createdAt: r.createdAt,
  };
}

/** Whether a key matches a filter: search text in its id, masked key or note; state; upstream; a model it serves; a share of a limit used. */
function matchesFilter(view: KeyView, row: KeyRow, f: KeyFilter): boolean {
  if (f.status && view.state !== f.status) return false;
  if (f.upstreamId && view.upstreamId !== f.upstreamId) return false;
  if (f.nearLimit !== undefined && (view.capacity.nearLimit ?? -1) < f.nearLimit) return false;
  if (f.model) {
    const models = row.models.length > 0 ? row.models : row.upstreamModels;
    if (models.length > 0 && !models.includes(f.model)) return false;
  }
  if (f.q) {
    const q = f.q.toLowerCase();
    if (!view.id.includes(q) && !view.masked.toLowerCase().includes(q) && !view.note.toLowerCase().includes(q)) return false;
  }
  return true;
}

const STATE_ORDER: Record<KeyState, number> = { active: 0, cooling: 1, failing: 2, exhausted: 3, dead: 4, disabled: 5 };

const SORT_VALUE: Record<string, (k: KeyView) => number> = {
  created: (k) => k.createdAt,
  lastUsed: (k) => k.lastUsedAt ?? 0,
  balance: (k) => k.balance ?? -Infinity,
  state: (k) => STATE_ORDER[k.state],
  requests: (k) => k.requestsToday,
  nearLimit: (k) => k.capacity.nearLimit ?? -1,
};

/** Filters, sorts (ties by id, so pages are stable) and pages the keys. */
export function listKeyViews(
  rows: KeyRow[],
  filter: KeyFilter,
  sort: string,
  limit: number,
  offset: number,
  rules: HealthRules,
  usage: UsageView | null,
  now: number,
): { total: number; data: KeyView[] } {
  const matched: KeyView[] = [];
  for (const row of rows) {
    const view = toKeyView(row, rules, usage, now);
    if (matchesFilter(view, row, filter)) matched.push(view);
  }
  const descending = sort.startsWith("-");
  const value = SORT_VALUE[sort.replace(/^-/, "")] ?? SORT_VALUE.created!;
  matched.sort((a, b) => (value(a) - value(b)) * (descending ? -1 : 1) || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  return { total: matched.length, data: matched.slice(offset, offset + limit) };
}
