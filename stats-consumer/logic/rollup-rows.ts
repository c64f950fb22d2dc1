import { dayStart, hourStart, minuteStart, type AdminEvent, type AttemptEvent, type KeypoolEvent } from "../../schema";

/**
 * One attempt flattened for the rollup SQL: bucket starts, dimensions and the
 * increments it contributes. Short names keep the JSON parameter small.
 */
export interface AttemptRow {
  id: string;
  ts: number;
  m: number;
  h: number;
  d: number;
  key: string;
  model: string;
  client: string;
  req: 0 | 1;
  ok: 0 | 1;
  rl: 0 | 1;
  af: 0 | 1;
  nb: 0 | 1;
  ue: 0 | 1;
  ne: 0 | 1;
  ce: 0 | 1;
  ab: 0 | 1;
  pt: number;
  ct: number;
  tt: number;
  et: number;
  cached: number;
  reasoning: number;
  lat: number;
  ttfb: number | null;
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
  attempts: AttemptRow[];
  admin: AdminRow[];
}

const bit = (b: boolean): 0 | 1 => (b ? 1 : 0);

function attemptRow(e: AttemptEvent, timeZone: string): AttemptRow {
  return {
    id: e.id,
    ts: e.ts,
    m: minuteStart(e.ts),
    h: hourStart(e.ts),
    d: dayStart(e.ts, timeZone),
    key: e.keyId,
    model: e.model,
    client: e.clientKeyId,
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
    lat: e.latencyMs,
    ttfb: e.ttfbMs,
  };
}

function adminRow(e: AdminEvent): AdminRow {
  return { id: e.id, ts: e.ts, actor: e.actor, action: e.action, target: e.target, detail: e.detail ? JSON.stringify(e.detail) : null };
}

/**
 * Shapes a batch's events into rows, dropping repeats of an id inside the batch
 * (repeats across batches are dropped by the SQL against the dedupe window).
 * Day buckets start at local midnight in `timeZone`.
 */
export function toBatchRows(events: KeypoolEvent[], timeZone: string): BatchRows {
  const ids = new Set<string>();
  const rows: BatchRows = { seen: [], attempts: [], admin: [] };
  for (const e of events) {
    if (ids.has(e.id)) continue;
    ids.add(e.id);
    rows.seen.push({ id: e.id, ts: e.ts });
    if (e.type === "attempt") rows.attempts.push(attemptRow(e, timeZone));
    else if (e.type === "admin") rows.admin.push(adminRow(e));
  }
  return rows;
}

/** Whether folding these events can change what the snapshot holds. */
export function changesSnapshot(events: KeypoolEvent[]): boolean {
  return events.some((e) => e.type === "admin" || e.type === "probe");
}
