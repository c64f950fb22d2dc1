import { metricRow, sumMetricRows, type MetricRow } from "../../schema";
import { logAttempt, type LogAttempt } from "../../storage/request-log-rows";
import { dayStart, hourStart, minuteStart, type AdminEvent, type AttemptEvent, type KeypoolEvent, type PriceBook } from "../../schema";

/**
 * What attempts sharing a minute, day, key, upstream, model and client add to the
 * rollups: a row of `ingest_stage` (migrations 0010, 0021). Short names keep the
 * JSON parameter small.
 */
export interface StageRow {
  m: number;
  h: number;
  d: number;
  key: string;
  /** The upstream the attempt was sent to. */
  up: string;
  model: string;
  client: string;
  /** Attempts. */
  n: number;
  req: number;
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
  tt: number;
  et: number;
  cached: number;
  reasoning: number;
  /** Latency sum and maximum (ms). */
  ls: number;
  lm: number;
  /** Time to first byte: sum, maximum and how many attempts had one. */
  fs: number;
  fm: number;
  fc: number;
  /** What the attempts cost (micro-units), how many had usage and no price, and when the latest was sent. */
  cost: number;
  unpriced: number;
  la: number;
}

/** One attempt's contribution, with its event's id and time (checked against the dedupe window). */
export interface AttemptRow extends StageRow {
  id: string;
  ts: number;
}

export interface AdminRow {
  id: string;
  ts: number;
  actor: string;
  action: string;
  target: string | null;
  detail: string | null;
}

/** What one queue batch contributes, ready for one D1 transaction. */
export interface BatchRows {
  /** Every distinct event id of the batch, with its time (the dedupe window). */
  seen: { id: string; ts: number }[];
  /** One row per attempt. */
  attempts: AttemptRow[];
  /** The same attempts summed per minute, day, key, upstream, model and client. */
  groups: StageRow[];
  admin: AdminRow[];
  /** Each attempt for the request log. */
  log: LogAttempt[];
  /** Each attempt's contribution to the Prometheus counters (ids in `attempts` order), and the same summed per upstream, model and hour. */
  metricAttempts: MetricRow[];
  metrics: MetricRow[];
}

const bit = (b: boolean): 0 | 1 => (b ? 1 : 0);

function attemptRow(e: AttemptEvent, timeZone: string, prices: PriceBook): AttemptRow {
  const [cost, unpriced] = prices.attemptCost(e);
  return {
    id: e.id,
    ts: e.ts,
    m: minuteStart(e.ts),
    h: hourStart(e.ts),
    d: dayStart(e.ts, timeZone),
    key: e.keyId,
    up: e.upstreamId,
    model: e.model,
    client: e.clientKeyId,
    n: 1,
    req: bit(e.final),
    ok: bit(e.outcome === "ok"),
    rl: bit(e.outcome === "rate_limited"),
    af: bit(e.outcome === "auth_failed"),
    nb: bit(e.outcome === "no_balance"),
    ue: bit(e.outcome === "upstream_error"),
    ne: bit(e.outcome === "network_error"),
    ce: bit(e.outcome === "client_error"),
    ab: bit(e.outcome === "aborted"),
    pt: e.promptTokens,
    ct: e.completionTokens,
    tt: e.totalTokens,
    et: e.usageSource === "estimated" ? e.totalTokens : 0,
    cached: e.cachedTokens,
    reasoning: e.reasoningTokens,
    ls: e.latencyMs,
    lm: e.latencyMs,
    fs: e.ttfbMs ?? 0,
    fm: e.ttfbMs ?? 0,
    fc: e.ttfbMs === null ? 0 : 1,
    cost,
    unpriced,
    la: e.ts < prices.since ? 0 : e.ts,
  };
}

/** The fields of a stage row that add up; `lm`, `fm` and `la` keep the larger instead. */
const SUMMED = [
  "n",
  "req",
  "ok",
  "rl",
  "af",
  "nb",
  "ue",
  "ne",
  "ce",
  "ab",
  "pt",
  "ct",
  "tt",
  "et",
  "cached",
  "reasoning",
  "ls",
  "fs",
  "fc",
  "cost",
  "unpriced",
] as const;

/** The attempts summed per minute, day, key, upstream, model and client (the hour follows from the minute). */
function groupAttempts(attempts: AttemptRow[]): StageRow[] {
  const groups = new Map<string, StageRow>();
  for (const { id: _id, ts: _ts, ...row } of attempts) {
    // Lengths keep the key unambiguous whatever the ids and model names hold.
    const k = `${row.m}|${row.d}|${row.key.length}:${row.key}|${row.up.length}:${row.up}|${row.client.length}:${row.client}|${row.model}`;
    const group = groups.get(k);
    if (!group) {
      groups.set(k, row);
      continue;
    }
    for (const f of SUMMED) group[f] += row[f];
    group.lm = Math.max(group.lm, row.lm);
    group.fm = Math.max(group.fm, row.fm);
    group.la = Math.max(group.la, row.la);
  }
  return [...groups.values()];
}

function adminRow(e: AdminEvent): AdminRow {
  return { id: e.id, ts: e.ts, actor: e.actor, action: e.action, target: e.target, detail: e.detail ? JSON.stringify(e.detail) : null };
}

/**
 * Shapes a batch's events into rows, dropping repeats of an id inside the batch
 * (repeats across batches are dropped by the SQL against the dedupe window).
 * Day buckets start at local midnight in `timeZone`; each attempt is priced by
 * the price in force at its time.
 */
export function toBatchRows(events: KeypoolEvent[], timeZone: string, prices: PriceBook): BatchRows {
  const ids = new Set<string>();
  const rows: BatchRows = { seen: [], attempts: [], groups: [], admin: [], log: [], metricAttempts: [], metrics: [] };
  for (const e of events) {
    if (ids.has(e.id)) continue;
    ids.add(e.id);
    rows.seen.push({ id: e.id, ts: e.ts });
    if (e.type === "attempt") {
      const row = attemptRow(e, timeZone, prices);
      rows.attempts.push(row);
      // Counted everywhere else; in the request log only when the gateway kept its request (the `requestLogSample` setting).
      if (e.logged) rows.log.push(logAttempt(e, row.cost, row.unpriced));
      rows.metricAttempts.push(metricRow(e, row));
    } else if (e.type === "admin") rows.admin.push(adminRow(e));
  }
  rows.groups = groupAttempts(rows.attempts);
  rows.metrics = sumMetricRows(rows.metricAttempts);
  return rows;
}

/** Whether folding these events can change what the snapshot holds. */
export function changesSnapshot(events: KeypoolEvent[]): boolean {
  return events.some((e) => e.type === "admin" || e.type === "probe");
}
