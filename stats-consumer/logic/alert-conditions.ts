import { percent, type AlertSettings, type Condition, type KeyState, type Snapshot } from "../../schema";

/** A key's masked form and balance, beside the snapshot's view of it. */
export interface KeyExtras {
  masked: string;
  balance: number | null;
}

const STATE_DETAIL: Partial<Record<KeyState, string>> = {
  dead: "the upstream refused the key (401/403): disabled until a probe sees it work",
  exhausted: "the upstream reports no balance: out of rotation until a probe sees balance",
  failing: "repeated 5xx or network failures: out of rotation until a request or probe succeeds",
};

/** Keys that can take traffic now or after a cooling timer: not dead, exhausted, failing or disabled. */
const inService = (state: KeyState) => state === "active" || state === "cooling";

/**
 * The pool's conditions in a snapshot just published: keys dead, exhausted or
 * failing; keys below their balance threshold; the pool's share of keys in
 * service; each model's share of keys in service, and models whose keys in
 * service are all cooling. Keys of disabled upstreams, and disabled keys, are
 * the operator's choice and count for nothing. Only kinds switched on are looked for.
 */
export function poolConditions(snapshot: Snapshot, extras: Map<string, KeyExtras>, alerts: AlertSettings): Condition[] {
  const { rules } = alerts;
  const out: Condition[] = [];
  const upstreams = new Map(snapshot.upstreams.map((u) => [u.id, u]));
  let enabled = 0;
  let serving = 0;
  const byModel = new Map<string, { enabled: number; serving: number; cooling: number; coolingUntil: number }>();
  const anyModel: { state: KeyState; coolingUntil: number | null }[] = [];
  for (const key of snapshot.keys) {
    const upstream = upstreams.get(key.upstreamId);
    if (!upstream?.enabled || key.state === "disabled") continue;
    const extra = extras.get(key.id);
    const label = `${extra?.masked ?? key.id} (${upstream.name})`;
    enabled++;
    if (inService(key.state)) serving++;
    if ((key.state === "dead" || key.state === "exhausted" || key.state === "failing") && rules[`key_${key.state}`].enabled) {
      out.push({ subject: `key:${key.id}`, kind: `key_${key.state}`, value: key.state, label, detail: STATE_DETAIL[key.state]! });
    }
    const threshold = alerts.lowBalanceByUpstream[key.upstreamId] ?? rules.low_balance.threshold;
    if (rules.low_balance.enabled && extra?.balance !== null && extra?.balance !== undefined && extra.balance < threshold) {
      out.push({ subject: `balance:${key.id}`, kind: "low_balance", value: "below", label, detail: `balance ${extra.balance} (threshold ${threshold})` });
    }
    const models = key.models.length > 0 ? key.models : upstream.models;
    if (models.length === 0) anyModel.push({ state: key.state, coolingUntil: key.coolingUntil });
    for (const model of models) {
      let m = byModel.get(model);
      if (!m) byModel.set(model, (m = { enabled: 0, serving: 0, cooling: 0, coolingUntil: 0 }));
      count(m, key.state, key.coolingUntil);
    }
  }
  // Keys of upstreams that serve any model count for every model the pool names.
  for (const m of byModel.values()) for (const k of anyModel) count(m, k.state, k.coolingUntil);
  if (rules.pool_active_keys.enabled && enabled > 0 && serving / enabled < rules.pool_active_keys.threshold) {
    out.push({
      subject: "pool:active",
      kind: "pool_active_keys",
      value: "below",
      label: "pool",
      detail: `${serving} of ${enabled} enabled keys in service (${percent(serving / enabled)}, threshold ${percent(rules.pool_active_keys.threshold)})`,
    });
  }
  for (const [model, m] of [...byModel].sort(([a], [b]) => (a < b ? -1 : 1))) {
    if (rules.model_headroom.enabled && m.serving / m.enabled < rules.model_headroom.threshold) {
      out.push({
        subject: `model:${model}:headroom`,
        kind: "model_headroom",
        value: "below",
        label: model,
        detail: `${m.serving} of ${m.enabled} keys in service (${percent(m.serving / m.enabled)}, threshold ${percent(rules.model_headroom.threshold)})`,
      });
    }
    if (rules.model_all_cooling.enabled && m.serving > 0 && m.cooling === m.serving) {
      out.push({
        subject: `model:${model}:cooling`,
        kind: "model_all_cooling",
        value: "cooling",
        label: model,
        detail: `all ${m.serving} keys in service are cooling, the first until ${new Date(m.coolingUntil).toISOString()}`,
      });
    }
  }
  return out;
}

function count(m: { enabled: number; serving: number; cooling: number; coolingUntil: number }, state: KeyState, coolingUntil: number | null) {
  m.enabled++;
  if (inService(state)) m.serving++;
  if (state === "cooling") {
    m.cooling++;
    if (coolingUntil !== null) m.coolingUntil = m.coolingUntil === 0 ? coolingUntil : Math.min(m.coolingUntil, coolingUntil);
  }
}

/** A client key's day and month quotas (null: none), and what it used of them. */
export interface ClientQuotaRow {
  id: string;
  name: string;
  limits: { rpd: number | null; tpd: number | null; monthly_tokens: number | null; daily_budget: number | null; monthly_budget: number | null };
  used: { dayRequests: number; dayTokens: number; dayCost: number; monthTokens: number; monthCost: number };
}

/**
 * Client keys at the warning share of a day or month quota or budget, or at all
 * of it. The subject names the day or month, so a new period starts afresh (and
 * the last one's condition clears). Rate limits per minute are not quotas: a
 * client at its RPM is refused for seconds, nothing to wake anyone for.
 */
export function clientConditions(rows: ClientQuotaRow[], alerts: AlertSettings, today: number, month: number, currency: string): Condition[] {
  const rule = alerts.rules.client_quota;
  if (!rule.enabled) return [];
  const out: Condition[] = [];
  for (const c of rows) {
    const quotas = [
      ["rpd", c.limits.rpd, c.used.dayRequests, today, "requests today"],
      ["tpd", c.limits.tpd, c.used.dayTokens, today, "tokens today"],
      ["monthly_tokens", c.limits.monthly_tokens, c.used.monthTokens, month, "tokens this month"],
      ["daily_budget", c.limits.daily_budget, c.used.dayCost, today, `micro-${currency} today`],
      ["monthly_budget", c.limits.monthly_budget, c.used.monthCost, month, `micro-${currency} this month`],
    ] as const;
    for (const [name, limit, used, period, unit] of quotas) {
      if (limit === null || limit <= 0) continue;
      const share = used / limit;
      if (share < rule.threshold) continue;
      const full = share >= 1;
      out.push({
        subject: `client:${c.id}:${name}:${period}`,
        kind: "client_quota",
        value: full ? "full" : "warn",
        label: `${c.name} ${name}`,
        detail: `${used} of ${limit} ${unit} (${percent(share)})${full ? ": requests are refused until it resets" : ""}`,
      });
    }
  }
  return out;
}
