import { z } from "zod";

/**
 * The pool's usage against its keys' limits, as the consumer last counted it:
 * a second KV value beside the snapshot, holding only keys with a limit or a
 * provider's reading, republished at most once a second while they carry
 * traffic. Each gateway isolate adds what it sent itself since `generatedAt`.
 */

/** One provider window as the pool last read it: when, its limit, what remained, when it resets (epoch ms). */
export const usageReadingSchema = z.tuple([z.number(), z.number().nullable(), z.number().nullable(), z.number().nullable()]);

/** One client key's usage against its quotas, by position: see `clientUsageOf`. */
export const clientUsageTupleSchema = z.tuple([
  // The minute bucket counted last, its requests and tokens, and the minute before's.
  z.number(),
  z.number(),
  z.number(),
  z.number(),
  z.number(),
  // The pool's day (in its time zone): when it began, its requests, tokens and spend (micro-units) so far.
  z.number(),
  z.number(),
  z.number(),
  z.number(),
  // The month: when it began, its tokens and spend so far.
  z.number(),
  z.number(),
  z.number(),
  // The latest attempt of the client the counts hold (when it was sent, epoch ms; 0: none this month).
  z.number(),
]);

/**
 * Each key's counts in `keyCounts`, this many numbers a key in `keyIds` order:
 * the minute bucket's requests and tokens, the minute before's, the key's day
 * window (an index into `dayWindows`), its day's requests and tokens, and
 * `generatedAt` minus the latest attempt the counts hold (so 0 — none known —
 * is `generatedAt`).
 */
export const KEY_USAGE_WIDTH = 8;

const isStrings = (v: unknown): v is string[] => Array.isArray(v) && v.every((x) => typeof x === "string");
/** A plain loop: zod's per-element parse of a long column costs about what the JSON parse of it does. */
function isNumbers(v: unknown): v is number[] {
  if (!Array.isArray(v)) return false;
  for (let i = 0; i < v.length; i++) if (typeof v[i] !== "number") return false;
  return true;
}

/**
 * The pool's usage, in columns: one array of ids and one of numbers for the
 * keys rather than an object per key, because every isolate parses the whole
 * value at each new version and a large pool holds an entry for every key with
 * a limit. Readers build a key's usage only when they ask for it.
 */
export const poolUsageSchema = z
  .object({
    version: z.number().int().nonnegative(),
    generatedAt: z.number().int(),
    /** The minute bucket counted last (the keys' and the clients'). */
    minuteStart: z.number().int(),
    /** The keys' day windows: when each began and when it resets (epoch ms). */
    dayWindows: z.array(z.tuple([z.number(), z.number()])),
    keyIds: z.custom<string[]>(isStrings, "keyIds must be an array of strings"),
    keyCounts: z.custom<number[]>(isNumbers, "keyCounts must be an array of numbers"),
    /** The provider's latest word on a key's requests and tokens windows, for the keys it says are nearly spent. */
    keyReadings: z.record(z.string(), z.tuple([usageReadingSchema.nullable(), usageReadingSchema.nullable()])),
    /** Client keys with quotas. */
    clients: z.record(z.string(), clientUsageTupleSchema),
  })
  .refine(
    (u) => {
      if (u.keyCounts.length !== u.keyIds.length * KEY_USAGE_WIDTH) return false;
      for (let o = 4; o < u.keyCounts.length; o += KEY_USAGE_WIDTH) {
        const w = u.keyCounts[o]!;
        if (!Number.isInteger(w) || w < 0 || w >= u.dayWindows.length) return false;
      }
      return true;
    },
    { message: "keyCounts must hold 8 numbers a key, each naming a day window" },
  );
export type PoolUsage = z.infer<typeof poolUsageSchema>;

/**
 * The KV key the pool's usage lives under. (`usage:v1`, an object of tuples by
 * key, is what versions before the columns wrote; an upgrade leaves it.)
 */
export const USAGE_KV_KEY = "usage:v2";

/**
 * How often the consumer publishes the usage: every second (KV allows one write
 * a second to a key), unless a publish takes more than `share` of the time
 * between two — then as much less often as keeps it to that share (its D1 reads
 * hold the one database the events are folded into), up to every 30 s (how
 * long KV's edge cache may keep a value anyway).
 */
export const USAGE_SPACING = { minMs: 1_000, maxMs: 30_000, share: 0.4 };

/**
 * The longest JSON list of key ids one D1 statement of the consumer takes
 * (storage/keys.ts: `keyIdLists`): half of the 2,000,000 bytes D1 takes in one
 * string, room for the rest of the statement's parameters.
 */
export const KEY_ID_LIST_BYTES = 1_000_000;

/**
 * The longest JSON list of key ids the usage publish reads a day window for in
 * one statement: the statement that fills the kept sums of a list's keys reads
 * every key's past hours, the longest of the publish; shorter lists keep it well
 * under D1's limit on one query's time (docs/scale.md).
 */
export const DAY_ID_LIST_BYTES = KEY_ID_LIST_BYTES / 4;

/** A provider window as counted: when read, its limit, what remained, when it resets. */
export interface UsageReading {
  at: number;
  limit: number | null;
  remaining: number | null;
  resetAt: number | null;
}

/** One key's usage, by name. */
export interface KeyUsage {
  minuteStart: number;
  minute: { requests: number; tokens: number };
  previousMinute: { requests: number; tokens: number };
  dayStart: number;
  dayResetAt: number;
  day: { requests: number; tokens: number };
  requests: UsageReading | null;
  tokens: UsageReading | null;
  /**
   * When the latest attempt with the key that the counts hold was sent (0: none,
   * or not known): an isolate counts its own sends after it, exactly.
   */
  countedTo: number;
}

const reading = (t: z.infer<typeof usageReadingSchema> | null): UsageReading | null => (t ? { at: t[0], limit: t[1], remaining: t[2], resetAt: t[3] } : null);
const tuple = (r: UsageReading | null): z.infer<typeof usageReadingSchema> | null => (r ? [r.at, r.limit, r.remaining, r.resetAt] : null);

/** The usage of the key at position `i` of `u.keyIds`. */
export function keyUsageAt(u: PoolUsage, i: number): KeyUsage {
  const c = u.keyCounts;
  const o = i * KEY_USAGE_WIDTH;
  const [dayStart, dayResetAt] = u.dayWindows[c[o + 4]!]!;
  const readings = u.keyReadings[u.keyIds[i]!];
  return {
    minuteStart: u.minuteStart,
    minute: { requests: c[o]!, tokens: c[o + 1]! },
    previousMinute: { requests: c[o + 2]!, tokens: c[o + 3]! },
    dayStart,
    dayResetAt,
    day: { requests: c[o + 5]!, tokens: c[o + 6]! },
    requests: reading(readings?.[0] ?? null),
    tokens: reading(readings?.[1] ?? null),
    countedTo: u.generatedAt - c[o + 7]!,
  };
}

/** The provider's readings of a key, as `keyReadings` holds them (null: neither says it is nearly spent). */
export function keyReadingsTuple(u: Pick<KeyUsage, "requests" | "tokens">): [ReturnType<typeof tuple>, ReturnType<typeof tuple>] | null {
  return u.requests || u.tokens ? [tuple(u.requests), tuple(u.tokens)] : null;
}

/** One client key's usage as counted by the consumer, by name. */
export interface ClientUsage {
  minuteStart: number;
  minute: { requests: number; tokens: number };
  previousMinute: { requests: number; tokens: number };
  dayStart: number;
  day: { requests: number; tokens: number; costMicros: number };
  monthStart: number;
  month: { tokens: number; costMicros: number };
  /** When the latest attempt of the client the counts hold was sent (0: none this month). */
  countedTo: number;
}

export function clientUsageOf(t: z.infer<typeof clientUsageTupleSchema>): ClientUsage {
  return {
    minuteStart: t[0],
    minute: { requests: t[1], tokens: t[2] },
    previousMinute: { requests: t[3], tokens: t[4] },
    dayStart: t[5],
    day: { requests: t[6], tokens: t[7], costMicros: t[8] },
    monthStart: t[9],
    month: { tokens: t[10], costMicros: t[11] },
    countedTo: t[12],
  };
}

export function clientUsageTuple(u: ClientUsage): z.infer<typeof clientUsageTupleSchema> {
  return [
    u.minuteStart,
    u.minute.requests,
    u.minute.tokens,
    u.previousMinute.requests,
    u.previousMinute.tokens,
    u.dayStart,
    u.day.requests,
    u.day.tokens,
    u.day.costMicros,
    u.monthStart,
    u.month.tokens,
    u.month.costMicros,
    u.countedTo,
  ];
}

/** One of a client key's quotas as `GET /v1/key` shows it. */
const quotaStatusSchema = z.object({
  /** rpm, tpm, rpd, tpd, monthly_tokens, daily_budget, monthly_budget */
  name: z.string(),
  unit: z.enum(["requests", "tokens", "micros"]),
  limit: z.number(),
  used: z.number(),
  remaining: z.number(),
  /** When the window is next empty or starts again (epoch seconds). */
  resets_at: z.number().int(),
});

/** What a client key may read about itself: `GET /v1/key`. */
export const clientKeyStatusSchema = z.object({
  object: z.literal("client_key"),
  id: z.string(),
  name: z.string(),
  /** Models it may use; empty: all. */
  models: z.array(z.string()),
  /** Epoch seconds, or null. */
  expires_at: z.number().int().nullable(),
  currency: z.string(),
  /** Its quotas as enforced now: the pool's count plus what this gateway instance admitted since. */
  quotas: z.array(quotaStatusSchema),
  /** Its usage as counted (the pool's day and month, in `time_zone`): requests, tokens and spend in integer micro-units. */
  usage: z.object({
    today: z.object({ requests: z.number().int(), tokens: z.number().int(), cost_micros: z.number().int() }),
    month: z.object({ tokens: z.number().int(), cost_micros: z.number().int() }),
  }),
  time_zone: z.string(),
});
export type ClientKeyStatus = z.infer<typeof clientKeyStatusSchema>;
