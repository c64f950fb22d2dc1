import { MINUTE_MS, type StatsSummary } from "../../schema";

/** Requests and tokens of one rollup bucket, summed over keys, models and clients. */
export interface BucketTotals {
  bucket: number;
  requests: number;
  tokens: number;
}

/**
 * RPM/TPM over the last 60 seconds from per-minute buckets, estimated the way
 * sliding-window rate limiters do: the current minute so far plus the previous
 * minute weighted by the share of it still inside the window. RPD/TPD are the
 * day bucket of the configured time zone.
 */
export function summarize(minutes: BucketTotals[], today: BucketTotals | undefined, now: number, timeZone: string): StatsSummary {
  const current = Math.floor(now / MINUTE_MS) * MINUTE_MS;
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
    timeZone,
    generatedAt: now,
  };
}

/** One point per bucket from `from` to `to` (inclusive), zeros where no traffic was rolled up. */
export function fillSeries(rows: BucketTotals[], from: number, to: number, step: number): { t: number; requests: number; tokens: number }[] {
  const byBucket = new Map(rows.map((r) => [r.bucket, r]));
  const points: { t: number; requests: number; tokens: number }[] = [];
  for (let t = from; t <= to; t += step) {
    const r = byBucket.get(t);
    points.push({ t, requests: r?.requests ?? 0, tokens: r?.tokens ?? 0 });
  }
  return points;
}
