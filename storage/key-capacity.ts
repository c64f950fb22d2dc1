/**
 * The `key_capacity` table: what the providers' rate-limit headers last said of
 * each key's requests and tokens windows. Written by the consumer only (folded
 * from attempt events, so a replay rebuilds it); read with the keys by the
 * consumer (the snapshot) and the admin API (the key list).
 */

/** One window as a reading left it: when its answer arrived, the limit, what remained, when it resets (epoch ms). */
export interface WindowReading {
  ts: number;
  limit: number | null;
  remaining: number | null;
  resetAt: number | null;
}

/** What one batch says of one key: the winning reading of each window (null: none in the batch). */
export interface CapacityRow {
  key: string;
  requests: WindowReading | null;
  tokens: WindowReading | null;
}

/**
 * Whether reading `a` wins over `b` (both of one window of one key): the later
 * one, and on a tie the one with less remaining, then the later reset, then the
 * lower limit — so the fold does not depend on the order events arrive in.
 */
export function readingWins(a: WindowReading, b: WindowReading): boolean {
  if (a.ts !== b.ts) return a.ts > b.ts;
  const order = (r: WindowReading) => [r.remaining ?? -1, -(r.resetAt ?? -1), r.limit ?? -1];
  const [x, y] = [order(a), order(b)];
  for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) return x[i]! < y[i]!;
  return false;
}

/** The JSON parameter of `mergeCapacitySql`: each row as an array read by position. */
export function capacityRowsParam(rows: CapacityRow[]): string {
  const w = (r: WindowReading | null) => (r ? [r.ts, r.limit, r.remaining, r.resetAt] : [0, null, null, null]);
  return JSON.stringify(rows.map((r) => [r.key, ...w(r.requests), ...w(r.tokens)]));
}

/** SQL for "the incoming reading of window `p` (req or tok) wins", the same order as `readingWins`. */
const wins = (p: "req" | "tok") =>
  `(excluded.${p}_ts > ${p}_ts OR (excluded.${p}_ts = ${p}_ts AND
    (COALESCE(excluded.${p}_remaining, -1), -COALESCE(excluded.${p}_reset_at, -1), COALESCE(excluded.${p}_limit, -1))
    < (COALESCE(${p}_remaining, -1), -COALESCE(${p}_reset_at, -1), COALESCE(${p}_limit, -1))))`;

const take = (p: "req" | "tok") =>
  ["ts", "limit", "remaining", "reset_at"].map((c) => `${p}_${c} = CASE WHEN ${wins(p)} THEN excluded.${p}_${c} ELSE ${p}_${c} END`).join(",\n    ");

/**
 * Merges the readings of `capacityRowsParam` (`?1`) into `${prefix}key_capacity`:
 * each window takes the winning reading whole. Idempotent and order-independent,
 * so it needs no dedupe and a replay rebuilds the same rows.
 */
export function mergeCapacitySql(prefix: string): string {
  return `INSERT INTO ${prefix}key_capacity (key_id, req_ts, req_limit, req_remaining, req_reset_at, tok_ts, tok_limit, tok_remaining, tok_reset_at)
  SELECT value->>0, value->>1, value->>2, value->>3, value->>4, value->>5, value->>6, value->>7, value->>8
  FROM json_each(?1) WHERE true
  ON CONFLICT (key_id) DO UPDATE SET
    ${take("req")},
    ${take("tok")}`;
}

/** The columns a SELECT that joins `key_capacity` as `c` lists for `capacityFromRow`. */
export const CAPACITY_COLUMNS = "c.req_ts, c.req_limit, c.req_remaining, c.req_reset_at, c.tok_ts, c.tok_limit, c.tok_remaining, c.tok_reset_at";

/** The readings of a row selected with CAPACITY_COLUMNS (null where the key has none). */
export function capacityFromRow(row: object): { requests: WindowReading | null; tokens: WindowReading | null } {
  const r = row as Record<string, unknown>;
  const reading = (p: "req" | "tok"): WindowReading | null => {
    const ts = Number(r[`${p}_ts`] ?? 0);
    if (ts === 0) return null;
    const n = (v: unknown) => (v === null || v === undefined ? null : Number(v));
    return { ts, limit: n(r[`${p}_limit`]), remaining: n(r[`${p}_remaining`]), resetAt: n(r[`${p}_reset_at`]) };
  };
  return { requests: reading("req"), tokens: reading("tok") };
}
