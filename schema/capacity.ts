import { z } from "zod";
import { DAY_MS, HOUR_MS, dayStart, hourStart } from "./buckets";
import { isTimeZone } from "./settings";

/**
 * A key's capacity: the limits a provider puts on it — requests and tokens per
 * minute and per day — configured by the admin (per upstream, overridden per
 * key) or learned from the rate-limit headers the provider sends, and how the
 * provider counts its day.
 */

/** How a provider counts a day: it resets at a local hour in a time zone (most free tiers: midnight Pacific), or it is the last 24 hours. */
export const dayRuleSchema = z.discriminatedUnion("reset", [
  z.object({
    reset: z.literal("local"),
    hour: z.number().int().min(0).max(23),
    timeZone: z.string().refine(isTimeZone, "unknown IANA time zone"),
  }),
  z.object({ reset: z.literal("rolling") }),
]);
export type DayRule = z.infer<typeof dayRuleSchema>;

const limit = z.number().int().positive().max(1e12);

/** Configured limits; each one absent is unknown (or, on a key, its upstream's). */
export const limitsSchema = z
  .object({
    rpm: limit,
    rpd: limit,
    tpm: limit,
    tpd: limit,
    day: dayRuleSchema,
  })
  .partial()
  .strict();
export type Limits = z.infer<typeof limitsSchema>;

/** The four limits by name. */
export const LIMIT_NAMES = ["rpm", "rpd", "tpm", "tpd"] as const;
export type LimitName = (typeof LIMIT_NAMES)[number];

/** A key's limits: its own where it has them, else its upstream's (the day rule likewise). */
export function effectiveLimits(upstream: Limits, key: Limits): Limits {
  return { ...upstream, ...key };
}

/** When a provider does not say how it counts its day: at midnight UTC. */
export const DEFAULT_DAY: DayRule = { reset: "local", hour: 0, timeZone: "UTC" };

/**
 * When the provider's current day began, by `rule`, at `now`: the last time
 * the local clock showed `hour`:00 in the rule's zone, or 24 hours ago.
 */
export function dayWindowStart(rule: DayRule, now: number): number {
  if (rule.reset === "rolling") return now - DAY_MS;
  // The day that starts at `hour` is the calendar day shifted by `hour`: its start is
  // local midnight of (now − hour) plus `hour`, give or take a DST change that day.
  const shifted = dayStart(now - rule.hour * HOUR_MS, rule.timeZone) + rule.hour * HOUR_MS;
  return shifted <= now ? shifted : shifted - DAY_MS;
}

/**
 * Where the pool's count of a key's day begins at `now`: its day's start by its
 * rule — for a rolling day, the start of the hour 24 hours ago, so the count
 * holds up to an hour's traffic more than the provider's, never less, and its
 * past hours can be kept between publishes (stats-consumer/logic/window-count.ts).
 */
export function dayCountStart(rule: DayRule, now: number): number {
  return rule.reset === "rolling" ? hourStart(now - DAY_MS) : dayWindowStart(rule, now);
}

/**
 * When the provider's day next resets after `now` (for a rolling day: when the
 * oldest traffic still inside it leaves — at most 24 hours from now; the caller
 * that knows the traffic can say sooner).
 */
export function nextDayReset(rule: DayRule, now: number): number {
  if (rule.reset === "rolling") return now + DAY_MS;
  const start = dayWindowStart(rule, now);
  // The next reset is the start of the day that contains a moment safely inside it (a day is 23 to 25 hours).
  const next = dayWindowStart(rule, start + DAY_MS + 2 * HOUR_MS);
  return next > now ? next : next + DAY_MS;
}

/**
 * A window with less than this share left is "nearly spent": the pool shares
 * the provider's word on it, and a request's token estimate is worth making.
 */
export const NEARLY_SPENT = 0.2;

/** One of a provider's rate-limit windows as its headers describe it at an answer. */
export const rateLimitWindowSchema = z.object({
  /** The window's limit, remaining allowance, and how long until it resets (ms), where the headers say. */
  limit: z.number().int().nonnegative().nullable(),
  remaining: z.number().int().nonnegative().nullable(),
  resetMs: z.number().int().nonnegative().nullable(),
});
export type RateLimitWindow = z.infer<typeof rateLimitWindowSchema>;

/** What an answer's rate-limit headers said of the key's requests and tokens windows. */
export const rateLimitReadingSchema = z.object({
  requests: rateLimitWindowSchema.nullable(),
  tokens: rateLimitWindowSchema.nullable(),
});
export type RateLimitReading = z.infer<typeof rateLimitReadingSchema>;
