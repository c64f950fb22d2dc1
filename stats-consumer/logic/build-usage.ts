import {
  DEFAULT_DAY,
  MINUTE_MS,
  clientUsageTuple,
  NEARLY_SPENT,
  dayWindowStart,
  dayCountStart,
  effectiveLimits,
  keyReadingsTuple,
  minuteStart,
  nextDayReset,
  type Limits,
  type PoolUsage,
  type UsageReading,
} from "../../schema";
import type { CapacityKeyRow } from "../../storage/keys";
import type { WindowReading } from "../../storage/key-capacity";

/**
 * The pool's usage against its keys' limits, published beside the snapshot:
 * for each key with a limit configured, its last two minute buckets and its day
 * so far; for any key, the provider's latest word when it says the key is
 * nearly spent (a key with plenty left needs no word from the pool: each isolate
 * reads its own answers).
 */

const hasLimit = (l: Limits) => l.rpm !== undefined || l.rpd !== undefined || l.tpm !== undefined || l.tpd !== undefined;

/** The reading, if it says the window is nearly spent and has not reset yet. */
function nearlySpent(r: WindowReading | null, now: number): UsageReading | null {
  if (!r || r.remaining === null || (r.resetAt !== null && r.resetAt <= now)) return null;
  const spent = r.limit ? r.remaining / r.limit < NEARLY_SPENT : r.remaining === 0;
  return spent ? { at: r.ts, limit: r.limit, remaining: r.remaining, resetAt: r.resetAt } : null;
}

/** The day windows the usage needs counted: where each key's count begins at `now`, by its day rule. */
export function dayStarts(keys: CapacityKeyRow[], now: number): Map<string, number> {
  return new Map(keys.map((k) => [k.keyId, dayCountStart(effectiveLimits(k.upstreamLimits, k.limits).day ?? DEFAULT_DAY, now)]));
}

/** What the rollups hold for the keys: minute buckets by key, and the day so far by key. */
export interface UsageCounts {
  minutes: Map<string, Map<number, { requests: number; tokens: number }>>;
  days: Map<string, { requests: number; tokens: number }>;
  /** When the latest attempt the counts hold was sent, by key. */
  countedTo: Map<string, number>;
}

/** What rollup_client_day and the minute rollups hold for the client keys with quotas. */
export interface ClientCounts {
  /** The month and the day they were counted for (the pool's, in its time zone). */
  month: number;
  today: number;
  /** Minute buckets by client. */
  minutes: Map<string, Map<number, { requests: number; tokens: number }>>;
  /** Per client: day_requests, day_tokens, day_cost, month_tokens, month_cost, last_at (a `selectClientDays` row). */
  days: Map<string, Record<string, number>>;
}

export function buildPoolUsage(keys: CapacityKeyRow[], counts: UsageCounts, clientCounts: ClientCounts, version: number, now: number): PoolUsage {
  const thisMinute = minuteStart(now);
  const zero = { requests: 0, tokens: 0 };
  const keyIds: string[] = [];
  const keyCounts: number[] = [];
  const keyReadings: PoolUsage["keyReadings"] = {};
  const dayWindows: PoolUsage["dayWindows"] = [];
  const windowAt = new Map<string, number>();
  for (const k of keys) {
    const limits = effectiveLimits(k.upstreamLimits, k.limits);
    const requests = nearlySpent(k.requests, now);
    const tokens = nearlySpent(k.tokens, now);
    if (!hasLimit(limits) && !requests && !tokens) continue;
    const minutes = counts.minutes.get(k.keyId);
    const minute = minutes?.get(thisMinute) ?? zero;
    const previous = minutes?.get(thisMinute - MINUTE_MS) ?? zero;
    const day = counts.days.get(k.keyId) ?? zero;
    const rule = limits.day ?? DEFAULT_DAY;
    const start = dayWindowStart(rule, now);
    const resetAt = nextDayReset(rule, now);
    // Keys share a handful of day windows (one per day rule), so each is written once.
    let w = windowAt.get(`${start}:${resetAt}`);
    if (w === undefined) {
      w = dayWindows.push([start, resetAt]) - 1;
      windowAt.set(`${start}:${resetAt}`, w);
    }
    keyIds.push(k.keyId);
    keyCounts.push(minute.requests, minute.tokens, previous.requests, previous.tokens, w, day.requests, day.tokens, now - (counts.countedTo.get(k.keyId) ?? 0));
    const readings = keyReadingsTuple({ requests, tokens });
    if (readings) keyReadings[k.keyId] = readings;
  }
  const clients: PoolUsage["clients"] = {};
  for (const id of new Set([...clientCounts.minutes.keys(), ...clientCounts.days.keys()])) {
    const minutes = clientCounts.minutes.get(id);
    const d = clientCounts.days.get(id);
    clients[id] = clientUsageTuple({
      minuteStart: thisMinute,
      minute: minutes?.get(thisMinute) ?? zero,
      previousMinute: minutes?.get(thisMinute - MINUTE_MS) ?? zero,
      dayStart: clientCounts.today,
      day: { requests: Number(d?.day_requests ?? 0), tokens: Number(d?.day_tokens ?? 0), costMicros: Number(d?.day_cost ?? 0) },
      monthStart: clientCounts.month,
      month: { tokens: Number(d?.month_tokens ?? 0), costMicros: Number(d?.month_cost ?? 0) },
      countedTo: Number(d?.last_at ?? 0),
    });
  }
  return { version, generatedAt: now, minuteStart: thisMinute, dayWindows, keyIds, keyCounts, keyReadings, clients };
}
