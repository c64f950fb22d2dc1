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

export const poolUsageSchema = z.object({
  version: z.number().int().nonnegative(),
  generatedAt: z.number().int(),
  keys: z.record(z.string(), keyUsageTupleSchema),
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
