/**
 * The shapes the rollup reads answer with: types only, so the pure stats logic
 * (and its tests outside the Workers runtime) can name them without the D1 API.
 */

/** Requests and tokens of one bucket, summed over keys, models and clients. */
export interface BucketTotals {
  bucket: number;
  requests: number;
  tokens: number;
}

/** Sums of every metric over a group of rows. */
export interface MetricSums {
  requests: number;
  attempts: number;
  successes: number;
  rateLimited: number;
  failures: number;
  clientErrors: number;
  aborted: number;
  promptTokens: number;
  completionTokens: number;
  tokens: number;
  estimatedTokens: number;
  latencySum: number;
  latencyMax: number;
  ttfbSum: number;
  ttfbCount: number;
  /** What the attempts cost (micro-units of the pool's currency), and how many had usage but no price. */
  costMicros: number;
  unpriced: number;
}

/** Spend over a range: micro-units, and attempts with usage but no price (their cost unknown). */
export interface SpendSums {
  costMicros: number;
  unpriced: number;
}

/** Dimension filters of the stats queries. */
export interface StatsFilters {
  keyId?: string;
  model?: string;
  clientKeyId?: string;
  upstreamId?: string;
}

/** One part of a signed sum over the rollups: a rollup's key rows in buckets [from, to) — for `day`, the bucket `from` — added or taken away. */
export interface CountTerm {
  rows: "minute" | "hour" | "day";
  from: number;
  /** Exclusive; Infinity: every bucket from `from` on. */
  to: number;
  sign: 1 | -1;
}
