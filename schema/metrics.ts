import type { AttemptEvent } from "./events";

/**
 * The Prometheus counters' arithmetic (storage/metrics.ts keeps them in D1):
 * what an attempt adds, by upstream, model and hour, with its latency and
 * time to first byte in histogram buckets.
 */

/**
 * The consumer's work whose D1 time and rows written are counted
 * (stats-consumer/storage/d1-work.ts, on `/metrics` as
 * keypool_d1_seconds_total): the parts of a fold transaction — the dedupe
 * window, the stage (and emptying it), the rollups, the request log, key health
 * and capacity, the rest (Prometheus counters, audit log, live figures) — and
 * the publish of the pool's usage.
 */
export const D1_WORKS = ["fold_dedupe", "fold_stage", "fold_rollups", "fold_request_log", "fold_key_state", "fold_other", "usage_publish"] as const;
export type D1Work = (typeof D1_WORKS)[number];
/** The parts of a fold transaction. */
export type FoldPart = Extract<D1Work, `fold_${string}`>;
/** The meta rows of that count: `d1_<work>_us`, `d1_<work>_rows_written`, and `d1_fold_events`. */
export const D1_WORK_PREFIX = "d1_";

/** Histogram bucket upper bounds in seconds; a last bucket (+Inf) follows. */
export const LATENCY_BOUNDS_S = [0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120] as const;

/** The bucket a duration in ms falls in (LATENCY_BOUNDS_S.length for +Inf). */
export function latencyBucket(ms: number): number {
  const s = ms / 1000;
  for (let i = 0; i < LATENCY_BOUNDS_S.length; i++) if (s <= LATENCY_BOUNDS_S[i]!) return i;
  return LATENCY_BOUNDS_S.length;
}

/** What attempts of one upstream, model and hour add to the counters; values in METRIC_FIELDS order. */
export interface MetricRow {
  upstream: string;
  model: string;
  /** The hour the attempts were sent in: attempts of hours wholly before `metrics_counted_since` are not counted. */
  h: number;
  req: number;
  n: number;
  ok: number;
  rl: number;
  af: number;
  nb: number;
  ue: number;
  ne: number;
  ce: number;
  ab: number;
  pt: number;
  ct: number;
  cost: number;
  unpriced: number;
  ls: number;
  lb: number[];
  fs: number;
  fc: number;
  fb: number[];
}

const SUMS = ["req", "n", "ok", "rl", "af", "nb", "ue", "ne", "ce", "ab", "pt", "ct", "cost", "unpriced", "ls", "fs", "fc"] as const;

export const emptyBuckets = () => new Array<number>(LATENCY_BOUNDS_S.length + 1).fill(0);

/** The counts an attempt adds, as its rollup row already holds them (outcome bits, tokens, cost, latency and first-byte sums). */
export type MetricCounts = Pick<MetricRow, "h" | (typeof SUMS)[number]>;

/** One attempt's contribution: its rollup row's counts, by its upstream and model, with its durations in their buckets. */
export function metricRow(e: AttemptEvent, counts: MetricCounts): MetricRow {
  const lb = emptyBuckets();
  lb[latencyBucket(e.latencyMs)] = 1;
  const fb = emptyBuckets();
  if (e.ttfbMs !== null) fb[latencyBucket(e.ttfbMs)] = 1;
  const row = { upstream: e.upstreamId, model: e.model, h: counts.h, lb, fb } as MetricRow;
  for (const f of SUMS) row[f] = counts[f];
  return row;
}

/** Attempts' contributions summed per upstream, model and hour. */
export function sumMetricRows(rows: MetricRow[]): MetricRow[] {
  const groups = new Map<string, MetricRow>();
  for (const row of rows) {
    const k = `${row.h}|${row.upstream.length}:${row.upstream}|${row.model}`;
    const g = groups.get(k);
    if (!g) {
      groups.set(k, { ...row, lb: [...row.lb], fb: [...row.fb] });
      continue;
    }
    for (const f of SUMS) g[f] += row[f];
    for (let i = 0; i < g.lb.length; i++) {
      g.lb[i]! += row.lb[i]!;
      g.fb[i]! += row.fb[i]!;
    }
  }
  return [...groups.values()];
}

/** A Prometheus label value as the text format wants it: backslash, double quote and newline escaped. */
export function labelValue(v: string): string {
  return v.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n");
}
