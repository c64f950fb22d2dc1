import { DAY_MS, HOUR_MS, MINUTE_MS, dayStart, hourStart, minuteStart, type Metrics, type StatsBucket, type StatsSummary } from "../../schema";
import type { BucketTotals, MetricSums } from "../../storage/rollup-sums";

/**
 * RPM/TPM over the last 60 seconds from per-minute buckets, estimated the way
 * sliding-window rate limiters do: the current minute so far plus the previous
 * minute weighted by the share of it still inside the window. RPD/TPD are the
 * day bucket of the configured time zone.
 */
export function summarize(
  minutes: BucketTotals[],
  today: BucketTotals | undefined,
  last24h: { requests: number; tokens: number },
  spend: StatsSummary["spend"],
  now: number,
  timeZone: string,
): StatsSummary {
  const current = minuteStart(now);
  const share = 1 - (now - current) / MINUTE_MS;
  let rpm = 0;
  let tpm = 0;
  for (const m of minutes) {
    const weight = m.bucket === current ? 1 : m.bucket === current - MINUTE_MS ? share : 0;
    rpm += m.requests * weight;
    tpm += m.tokens * weight;
  }
  return {
    rpm: Math.round(rpm),
    tpm: Math.round(tpm),
    rpd: today?.requests ?? 0,
    tpd: today?.tokens ?? 0,
    last24h,
    spend,
    timeZone,
    generatedAt: now,
  };
}

/** The start of the bucket containing `ts`. */
function bucketStart(bucket: StatsBucket, ts: number, timeZone: string): number {
  return bucket === "minute" ? minuteStart(ts) : bucket === "hour" ? hourStart(ts) : dayStart(ts, timeZone);
}

/** The start of the bucket after the one starting at `start` (days follow the zone's midnights, DST included). */
function nextBucket(bucket: StatsBucket, start: number, timeZone: string): number {
  return bucket === "minute" ? start + MINUTE_MS : bucket === "hour" ? start + HOUR_MS : dayStart(start + DAY_MS + HOUR_MS, timeZone);
}

/** The starts of the `count` buckets ending with the one that contains `now`, oldest first. */
export function bucketStarts(bucket: StatsBucket, count: number, now: number, timeZone: string): number[] {
  const last = bucketStart(bucket, now, timeZone);
  const width = bucket === "minute" ? MINUTE_MS : bucket === "hour" ? HOUR_MS : DAY_MS;
  let t = bucketStart(bucket, last - (count - 1) * width, timeZone);
  const starts: number[] = [];
  while (t <= last) {
    starts.push(t);
    t = nextBucket(bucket, t, timeZone);
  }
  return starts.slice(-count);
}

const ZERO: MetricSums = {
  requests: 0,
  attempts: 0,
  successes: 0,
  rateLimited: 0,
  failures: 0,
  clientErrors: 0,
  aborted: 0,
  promptTokens: 0,
  completionTokens: 0,
  tokens: 0,
  estimatedTokens: 0,
  latencySum: 0,
  latencyMax: 0,
  ttfbSum: 0,
  ttfbCount: 0,
  costMicros: 0,
  unpriced: 0,
};

/** Derived metrics (rates and averages) from the sums of a group of rollup rows. */
export function toMetrics(sums: MetricSums | undefined): Metrics {
  const s = sums ?? ZERO;
  const judged = s.attempts - s.clientErrors - s.aborted;
  return {
    requests: s.requests,
    attempts: s.attempts,
    successes: s.successes,
    rateLimited: s.rateLimited,
    failures: s.failures,
    clientErrors: s.clientErrors,
    aborted: s.aborted,
    promptTokens: s.promptTokens,
    completionTokens: s.completionTokens,
    tokens: s.tokens,
    estimatedTokens: s.estimatedTokens,
    successRate: judged > 0 ? s.successes / judged : null,
    latencyAvgMs: s.attempts > 0 ? s.latencySum / s.attempts : null,
    latencyMaxMs: s.latencyMax,
    ttfbAvgMs: s.ttfbCount > 0 ? s.ttfbSum / s.ttfbCount : null,
    costMicros: s.costMicros ?? 0,
    unpriced: s.unpriced ?? 0,
  };
}

/** One point per bucket start, zeros where no traffic was rolled up. */
export function fillSeries(rows: (MetricSums & { bucket: number })[], starts: number[]): (Metrics & { t: number })[] {
  const byBucket = new Map(rows.map((r) => [r.bucket, r]));
  return starts.map((t) => ({ t, ...toMetrics(byBucket.get(t)) }));
}
