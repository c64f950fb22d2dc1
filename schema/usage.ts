import { z } from "zod";

/**
 * The pool's usage against its keys' limits, as the consumer last counted it:
 * a second KV value beside the snapshot, small (only keys with a limit or a
 * provider's reading) and republished at most once a second while they carry
 * traffic. Each gateway isolate adds what it sent itself since `generatedAt`.
 */

/** One provider window as the pool last read it: when, its limit, what remained, when it resets (epoch ms). */
export const usageReadingSchema = z.tuple([z.number(), z.number().nullable(), z.number().nullable(), z.number().nullable()]);

/** One key's usage, by position (the value is read by every isolate): see `keyUsageOf`. */
export const keyUsageTupleSchema = z.tuple([
  // The minute bucket counted last, its requests and tokens, and the minute before's.
  z.number(),
  z.number(),
  z.number(),
  z.number(),
  z.number(),
  // The key's day window: when it began, when it resets, its requests and tokens so far.
  z.number(),
  z.number(),
  z.number(),
  z.number(),
  // The provider's latest word on its requests and tokens windows.
  usageReadingSchema.nullable(),
  usageReadingSchema.nullable(),
  // The latest attempt with the key the counts hold (when it was sent, epoch ms; absent from a usage written before it was published).
  z.number().optional(),
]);

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

export const poolUsageSchema = z.object({
  version: z.number().int().nonnegative(),
  generatedAt: z.number().int(),
  keys: z.record(z.string(), keyUsageTupleSchema),
  /** Client keys with quotas (absent from usage published before them). */
  clients: z.record(z.string(), clientUsageTupleSchema).default({}),
});
export type PoolUsage = z.infer<typeof poolUsageSchema>;

/** The KV key the pool's usage lives under. */
export const USAGE_KV_KEY = "usage:v1";

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

/** A key's usage from its tuple. */
export function keyUsageOf(t: z.infer<typeof keyUsageTupleSchema>): KeyUsage {
  return {
    minuteStart: t[0],
    minute: { requests: t[1], tokens: t[2] },
    previousMinute: { requests: t[3], tokens: t[4] },
    dayStart: t[5],
    dayResetAt: t[6],
    day: { requests: t[7], tokens: t[8] },
    requests: reading(t[9]),
    tokens: reading(t[10]),
    countedTo: t[11] ?? 0,
  };
}

/** A key's usage as its tuple. */
export function keyUsageTuple(u: KeyUsage): z.infer<typeof keyUsageTupleSchema> {
  return [
    u.minuteStart,
    u.minute.requests,
    u.minute.tokens,
    u.previousMinute.requests,
    u.previousMinute.tokens,
    u.dayStart,
    u.dayResetAt,
    u.day.requests,
    u.day.tokens,
    tuple(u.requests),
    tuple(u.tokens),
    u.countedTo,
  ];
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
