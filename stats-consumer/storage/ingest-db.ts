import { KEPT_FAILURES } from "../../schema";
import type { HealthRow } from "../logic/health-rows";
import type { AttemptRow, BatchRows, StageRow } from "../logic/rollup-rows";

const ROLLUP_TABLES = [
  ["rollup_minute", "m"],
  ["rollup_hour", "h"],
  ["rollup_day", "d"],
] as const;

const COUNTERS = [
  ["requests", "req"],
  ["successes", "ok"],
  ["rate_limited", "rl"],
  ["auth_failed", "af"],
  ["no_balance", "nb"],
  ["upstream_error", "ue"],
  ["network_error", "ne"],
  ["client_error", "ce"],
  ["aborted", "ab"],
  ["prompt_tokens", "pt"],
  ["completion_tokens", "ct"],
  ["total_tokens", "tt"],
  ["estimated_tokens", "et"],
  ["cached_tokens", "cached"],
  ["reasoning_tokens", "reasoning"],
] as const;

/** ingest_stage's columns (migration 0010): `StageRow`'s fields, in the order the JSON parameter's rows list them. */
const STAGE_FIELDS = ["m", "h", "d", "key", "model", "client", "n", ...COUNTERS.map(([, f]) => f), "ls", "lm", "fs", "fm", "fc"] as const satisfies readonly (keyof StageRow)[];

/**
 * A staged row as the JSON parameter carries it: its values in STAGE_FIELDS
 * order (an attempt's id after them). SQLite reads an array element by
 * position, where it finds an object's member by comparing names: staging took
 * 26 µs of CPU a row with objects and 14 with arrays, timed alone in local D1 —
 * about a row per event in a pool of thousands of keys.
 */
function stageTuple(row: StageRow | AttemptRow): unknown[] {
  const tuple: unknown[] = STAGE_FIELDS.map((f) => row[f]);
  if ("id" in row) tuple.push(row.id);
  return tuple;
}

/**
 * Copies the JSON parameter's rows into ingest_stage, parsing it once: the batch's
 * groups when all its events are new, else its attempts one by one, minus those
 * the dedupe window has seen.
 */
const stageSql = (p: string, unseenOnly: boolean) => `INSERT INTO ingest_stage (${STAGE_FIELDS.join(", ")})
  SELECT ${STAGE_FIELDS.map((_, i) => `value->>${i}`).join(", ")}
  FROM json_each(?1) AS e${unseenOnly ? `
  WHERE NOT EXISTS (SELECT 1 FROM ${p}seen_events s WHERE s.id = e.value->>${STAGE_FIELDS.length})` : ""}`;

const CLEAR_STAGE = "DELETE FROM ingest_stage";

/** The measure columns of every rollup table, and their sums over the stage, in the same order. */
const MEASURES = `attempts, ${COUNTERS.map(([c]) => c).join(", ")}, latency_ms_sum, latency_ms_max, ttfb_ms_sum, ttfb_ms_max, ttfb_count`;
const AGGREGATES = `SUM(e.n), ${COUNTERS.map(([, f]) => `SUM(e.${f})`).join(", ")},
      SUM(e.ls), MAX(e.lm), SUM(e.fs), MAX(e.fm), SUM(e.fc)`;
/** How an existing rollup row absorbs the batch's: counts and sums add up, maxima keep the larger. */
const ACCUMULATE = `attempts = attempts + excluded.attempts,
      ${COUNTERS.map(([c]) => `${c} = ${c} + excluded.${c}`).join(",\n      ")},
      latency_ms_sum = latency_ms_sum + excluded.latency_ms_sum,
      latency_ms_max = MAX(latency_ms_max, excluded.latency_ms_max),
      ttfb_ms_sum = ttfb_ms_sum + excluded.ttfb_ms_sum,
      ttfb_ms_max = MAX(ttfb_ms_max, excluded.ttfb_ms_max),
      ttfb_count = ttfb_count + excluded.ttfb_count`;

/** Sums the stage by bucket and dimensions, then adds it to existing rows. */
function rollupSql(table: string, bucketField: string, p: string): string {
  return `INSERT INTO ${p}${table} (bucket, key_id, model, client_key_id, ${MEASURES})
    SELECT e.${bucketField}, e.key, e.model, e.client, ${AGGREGATES}
    FROM ingest_stage AS e
    GROUP BY e.${bucketField}, e.key, e.model, e.client
    ON CONFLICT (bucket, key_id, model, client_key_id) DO UPDATE SET ${ACCUMULATE}`;
}

/** The stage summed per hour into the pool-wide hour rollup (the dashboard's unfiltered 30-day series). */
const poolHourSql = (p: string) => `INSERT INTO ${p}rollup_pool_hour (bucket, ${MEASURES})
    SELECT e.h, ${AGGREGATES}
    FROM ingest_stage AS e
    GROUP BY e.h
    ON CONFLICT (bucket) DO UPDATE SET ${ACCUMULATE}`;

const auditSql = (p: string, unseenOnly: boolean) => `INSERT OR IGNORE INTO ${p}audit_log (id, ts, actor, action, target, detail)
  SELECT value->>'$.id', value->>'$.ts', value->>'$.actor', value->>'$.action', value->>'$.target', value->>'$.detail'
  FROM json_each(?1)${unseenOnly ? ` WHERE NOT EXISTS (SELECT 1 FROM ${p}seen_events s WHERE s.id = value->>'$.id')` : ""}`;

const lww = (value: string, ts: string) =>
  `CASE WHEN excluded.${ts} > ${ts} OR (excluded.${ts} = ${ts} AND excluded.${value} > ${value}) THEN excluded.${value} ELSE ${value} END`;

/** key_health's values in the order its insert lists them, which is the order the JSON parameter's rows carry them (as staged rows, by position). */
const HEALTH_FIELDS = ["key", "ok", "rl", "cool", "auth", "nobal", "failures", "errTs", "err", "used", "balance", "balTs", "probeTs", "probe"] as const satisfies readonly (keyof HealthRow)[];

/**
 * Merges the batch's health contributions: maxima, the newest failures (a bounded
 * set) and last-writer-wins values. Idempotent and order-independent, so it needs
 * no dedupe and a replay rebuilds the same rows. A key the batch saw no failure
 * of keeps its failure list as it is, without the merge (which would give the
 * same list: both sides are kept unique, newest first, bounded).
 */
const healthSql = (p: string) => `INSERT INTO ${p}key_health (key_id, last_ok_ts, last_rate_limit_ts, cool_until, last_auth_fail_ts, last_no_balance_ts, failures,
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
      SELECT value AS f FROM json_each(${p}key_health.failures) UNION SELECT value FROM json_each(excluded.failures)
      ORDER BY f DESC LIMIT ${KEPT_FAILURES})) END,
    last_error = ${lww("last_error", "last_error_ts")},
    last_error_ts = MAX(last_error_ts, excluded.last_error_ts),
    last_used_at = MAX(last_used_at, excluded.last_used_at),
    balance = CASE WHEN excluded.balance_ts > balance_ts OR (excluded.balance_ts = balance_ts AND excluded.balance > balance)
      THEN excluded.balance ELSE balance END,
    balance_ts = MAX(balance_ts, excluded.balance_ts),
    last_probe_result = ${lww("last_probe_result", "last_probe_ts")},
    last_probe_ts = MAX(last_probe_ts, excluded.last_probe_ts)`;

/** Adds the batch's ids to the dedupe window; `strict` fails the transaction if one is there already. */
const seenSql = (p: string, strict: boolean) =>
  `INSERT ${strict ? "" : "OR IGNORE "}INTO ${p}seen_events (id, ts) SELECT value->>'$.id', value->>'$.ts' FROM json_each(?1)`;

/** The projection tables a batch writes; a rebuild writes the same ones with the `shadow_` prefix. */
export const PROJECTION_TABLES = ["rollup_minute", "rollup_hour", "rollup_day", "rollup_pool_hour", "key_health", "audit_log", "seen_events"] as const;

/** Table-name prefix: live projections, or a rebuild's shadow copies. */
export type Projection = "" | "shadow_";

const statementsFor = (p: Projection) => ({
  rollups: [...ROLLUP_TABLES.map(([table, field]) => rollupSql(table, field, p)), poolHourSql(p)],
  health: healthSql(p),
  /** A batch of new events only: its ids join the window first (any seen one fails it), then its groups are staged. */
  allNew: { seen: seenSql(p, true), stage: stageSql(p, false), audit: auditSql(p, false) },
  /** A batch with events seen before: its unseen attempts are staged one by one, then its ids join the window. */
  someSeen: { stage: stageSql(p, true), audit: auditSql(p, true), seen: seenSql(p, false) },
});
const SQL = { live: statementsFor(""), shadow: statementsFor("shadow_") };

/**
 * Folds a batch into D1 in one transaction, so a failure leaves nothing
 * half-applied: the rollups fold from what is staged, key health merges its
 * order-independent facts, the audit log takes the admin events, the batch's ids
 * join the dedupe window and the stage is emptied. Nearly every batch is all new
 * events: it is folded as groups summed here, and its ids go into the window
 * first and strictly, so one id seen before fails the whole transaction. Then
 * (and whenever the fast transaction fails) the batch is folded again checking
 * each event against the window: a redelivered batch changes nothing, and a
 * partly redelivered one counts only its new events. At most nine statements
 * whatever the batch size.
 */
export async function ingestBatch(db: D1Database, rows: BatchRows, health: HealthRow[], projection: Projection = ""): Promise<void> {
  if (rows.seen.length === 0) return;
  const sql = projection === "" ? SQL.live : SQL.shadow;
  const fold = (stage: string, stageRows: readonly (StageRow | AttemptRow)[], audit: string): D1PreparedStatement[] => {
    const statements: D1PreparedStatement[] = [];
    if (stageRows.length > 0) {
      statements.push(db.prepare(stage).bind(JSON.stringify(stageRows.map(stageTuple))));
      for (const rollup of sql.rollups) statements.push(db.prepare(rollup));
    }
    if (health.length > 0) statements.push(db.prepare(sql.health).bind(JSON.stringify(health.map((h) => HEALTH_FIELDS.map((f) => h[f])))));
    if (rows.admin.length > 0) statements.push(db.prepare(audit).bind(JSON.stringify(rows.admin)));
    return statements;
  };
  const seen = JSON.stringify(rows.seen);
  const clear = rows.attempts.length > 0 ? [db.prepare(CLEAR_STAGE)] : [];
  try {
    await db.batch([db.prepare(sql.allNew.seen).bind(seen), ...fold(sql.allNew.stage, rows.groups, sql.allNew.audit), ...clear]);
    return;
  } catch {
    // An id seen before (a redelivery), or D1 failing: fold event by event, which settles both.
  }
  await db.batch([...fold(sql.someSeen.stage, rows.attempts, sql.someSeen.audit), db.prepare(sql.someSeen.seen).bind(seen), ...clear]);
}
