import { KEPT_FAILURES, type HealthFacts } from "../schema";

/**
 * The `key_health` table: each key's health as facts that merge in any order
 * (maxima, a bounded newest-first failure set, last-writer-wins values), from
 * which its state is derived. Written by the consumer only; read by the admin
 * API (the key list), the consumer (the snapshot) and the scheduler (probes).
 */

/** What one batch contributes to one key's facts; merged by `mergeHealthSql`. */
export interface HealthRow {
  key: string;
  ok: number;
  rl: number;
  cool: number;
  auth: number;
  nobal: number;
  failures: string[];
  errTs: number;
  err: string;
  used: number;
  balance: number | null;
  balTs: number;
  probeTs: number;
  probe: string;
}

/** The columns `healthFactsFromRow` reads, for SELECT lists that join `key_health` as `h`. */
export const HEALTH_FACT_COLUMNS = "h.last_ok_ts, h.last_rate_limit_ts, h.cool_until, h.last_auth_fail_ts, h.last_no_balance_ts, h.failures";

/** The facts of a row selected with HEALTH_FACT_COLUMNS (all null when the key has no health yet). */
export function healthFactsFromRow(row: object): HealthFacts {
  const r = row as Record<string, unknown>;
  return {
    lastOkTs: Number(r.last_ok_ts ?? 0),
    lastRateLimitTs: Number(r.last_rate_limit_ts ?? 0),
    coolUntil: Number(r.cool_until ?? 0),
    lastAuthFailTs: Number(r.last_auth_fail_ts ?? 0),
    lastNoBalanceTs: Number(r.last_no_balance_ts ?? 0),
    failures: JSON.parse(String(r.failures ?? "[]")) as string[],
  };
}

/** A `HealthRow`'s values in the order the merge's insert lists them; the JSON parameter carries rows as arrays in this order. */
const HEALTH_FIELDS = [
  "key",
  "ok",
  "rl",
  "cool",
  "auth",
  "nobal",
  "failures",
  "errTs",
  "err",
  "used",
  "balance",
  "balTs",
  "probeTs",
  "probe",
] as const satisfies readonly (keyof HealthRow)[];

/** The JSON parameter of `mergeHealthSql`: each row as an array read by position (SQLite finds an object's member by comparing names). */
export function healthRowsParam(rows: HealthRow[]): string {
  return JSON.stringify(rows.map((h) => HEALTH_FIELDS.map((f) => h[f])));
}

const lww = (value: string, ts: string) =>
  `CASE WHEN excluded.${ts} > ${ts} OR (excluded.${ts} = ${ts} AND excluded.${value} > ${value}) THEN excluded.${value} ELSE ${value} END`;

/**
 * Merges the contributions of `healthRowsParam` (`?1`) into `${prefix}key_health`:
 * maxima, the newest failures (a bounded set) and last-writer-wins values.
 * Idempotent and order-independent, so it needs no dedupe and a replay rebuilds
 * the same rows. A key the batch saw no failure of keeps its failure list as it
 * is, without the merge (which would give the same list: both sides are kept
 * unique, newest first, bounded).
 */
export function mergeHealthSql(prefix: string): string {
  return `INSERT INTO ${prefix}key_health (key_id, last_ok_ts, last_rate_limit_ts, cool_until, last_auth_fail_ts, last_no_balance_ts, failures,
    last_error_ts, last_error, last_used_at, balance, balance_ts, last_probe_ts, last_probe_result)
  SELECT ${HEALTH_FIELDS.map((f, i) => (f === "failures" ? `value->${i}` : `value->>${i}`)).join(", ")}
  FROM json_each(?1) WHERE true
  ON CONFLICT (key_id) DO UPDATE SET
    last_ok_ts = MAX(last_ok_ts, excluded.last_ok_ts),
    last_rate_limit_ts = MAX(last_rate_limit_ts, excluded.last_rate_limit_ts),
    cool_until = MAX(cool_until, excluded.cool_until),
    last_auth_fail_ts = MAX(last_auth_fail_ts, excluded.last_auth_fail_ts),
    last_no_balance_ts = MAX(last_no_balance_ts, excluded.last_no_balance_ts),
    failures = CASE WHEN excluded.failures = '[]' THEN failures ELSE (SELECT json_group_array(f) FROM (
      SELECT value AS f FROM json_each(${prefix}key_health.failures) UNION SELECT value FROM json_each(excluded.failures)
      ORDER BY f DESC LIMIT ${KEPT_FAILURES})) END,
    last_error = ${lww("last_error", "last_error_ts")},
    last_error_ts = MAX(last_error_ts, excluded.last_error_ts),
    last_used_at = MAX(last_used_at, excluded.last_used_at),
    balance = CASE WHEN excluded.balance_ts > balance_ts OR (excluded.balance_ts = balance_ts AND excluded.balance > balance)
      THEN excluded.balance ELSE balance END,
    balance_ts = MAX(balance_ts, excluded.balance_ts),
    last_probe_result = ${lww("last_probe_result", "last_probe_ts")},
    last_probe_ts = MAX(last_probe_ts, excluded.last_probe_ts)`;
}
