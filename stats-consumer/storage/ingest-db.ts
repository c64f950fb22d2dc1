import { insertAuditSql } from "../../storage/audit-log";
import { insertSeenSql, seenSql } from "../../storage/dedupe-window";
import { capacityRowsParam, mergeCapacitySql, type CapacityRow } from "../../storage/key-capacity";
import { healthRowsParam, mergeHealthSql, type HealthRow } from "../../storage/key-health";
import { foldMetricsSql, metricRowsParam, newestFoldedSql } from "../../storage/metrics";
import { insertAttemptsSql, insertRequestsSql, recomputeRequestsSql } from "../../storage/request-log";
import { foldClientDaySql, foldPoolHourSql, foldRollupSql, foldUpstreamSql, type FoldSource, type RollupMeasure } from "../../storage/rollups";
import type { AttemptRow, BatchRows, StageRow } from "../logic/rollup-rows";
import { lateBefore } from "../logic/window-count";
import { ADD_LATE_TO_KEPT_SQL } from "../../storage/usage-kept";
import { countD1Work, countFoldedEvents, restoreD1Work, takeD1Work } from "./d1-work";
import type { FoldPart, KeypoolEvent, PriceBook, Settings } from "../../schema";
import { foldShards } from "../logic/fold-shards";
import type { FoldDatabases } from "../../storage/fold-databases";
import {
  CHECK_LAYOUT_SQL,
  FoldLayoutRefused,
  SET_LAYOUT_SQL,
  foldLayoutOf,
  isLayoutRefusal,
  layoutRefusalMessage,
  readFoldLayouts,
} from "../../storage/fold-layout";

/** The stage's column for each rollup measure (ingest_stage, migration 0010: short names keep the JSON parameter small). */
const STAGE_MEASURES = {
  attempts: "n",
  requests: "req",
  successes: "ok",
  rate_limited: "rl",
  auth_failed: "af",
  no_balance: "nb",
  upstream_error: "ue",
  network_error: "ne",
  client_error: "ce",
  aborted: "ab",
  prompt_tokens: "pt",
  completion_tokens: "ct",
  total_tokens: "tt",
  estimated_tokens: "et",
  cached_tokens: "cached",
  reasoning_tokens: "reasoning",
  latency_ms_sum: "ls",
  latency_ms_max: "lm",
  ttfb_ms_sum: "fs",
  ttfb_ms_max: "fm",
  ttfb_count: "fc",
  cost_micros: "cost",
  unpriced: "unpriced",
  last_at: "la",
} as const satisfies Record<RollupMeasure, keyof StageRow>;

/** The stage as the rollups' fold source. */
const STAGE: FoldSource = {
  from: "ingest_stage AS e",
  measures: Object.fromEntries(Object.entries(STAGE_MEASURES).map(([m, f]) => [m, `e.${f}`])) as Record<RollupMeasure, string>,
};

/** ingest_stage's columns (migrations 0010, 0021): `StageRow`'s fields, in the order the JSON parameter's rows list them. */
const STAGE_FIELDS = ["m", "h", "d", "key", "up", "model", "client", ...Object.values(STAGE_MEASURES)] as const satisfies readonly (keyof StageRow)[];

/**
 * A staged row as the JSON parameter carries it: its values in STAGE_FIELDS
 * order (an attempt's id and time after them). SQLite reads an array element by
 * position, where it finds an object's member by comparing names, which made
 * staging — about a row per event in a pool of thousands of keys — the
 * costliest statement of the fold (docs/performance.md).
 */
function stageTuple(row: StageRow | AttemptRow): unknown[] {
  const tuple: unknown[] = STAGE_FIELDS.map((f) => row[f]);
  if ("id" in row) tuple.push(row.id, row.ts);
  return tuple;
}

/**
 * Copies the JSON parameter's rows into ingest_stage, parsing it once: the batch's
 * groups when all its events are new, else its attempts one by one, minus those
 * the dedupe window has seen.
 */
const stageSql = (p: string, unseenOnly: boolean) => `INSERT INTO ingest_stage (${STAGE_FIELDS.join(", ")})
  SELECT ${STAGE_FIELDS.map((_, i) => `value->>${i}`).join(", ")}
  FROM json_each(?1) AS e${
    unseenOnly
      ? `
  WHERE NOT ${seenSql(p, `e.value->>${STAGE_FIELDS.length}`, `e.value->>${STAGE_FIELDS.length + 1}`)}`
      : ""
  }`;

const CLEAR_STAGE = "DELETE FROM ingest_stage";

/** The projection tables a batch writes; a rebuild writes the same ones with the `shadow_` prefix. */
export const PROJECTION_TABLES = [
  "rollup_minute",
  "rollup_hour",
  "rollup_day",
  "rollup_upstream_minute",
  "rollup_upstream_hour",
  "rollup_upstream_day",
  "rollup_pool_hour",
  "rollup_client_day",
  "metric_total",
  "request_attempts",
  "request_log",
  "key_health",
  "key_capacity",
  "audit_log",
  "seen_events",
] as const;

/**
 * What a refold empties besides the projections: the usage publish's kept sums
 * and the dashboard's kept answers, both copies of the rollups that a publish
 * or a read fills again.
 */
const REFOLD_CACHES = ["usage_kept", "stats_cache"] as const;

/**
 * Empties a database's projections (and the copies kept of them) and gives it
 * `layout`, in one transaction: where a refold starts (replay.ts `refold`).
 */
export async function emptyProjections(db: D1Database, layout: string): Promise<void> {
  await db.batch([db.prepare(SET_LAYOUT_SQL).bind(layout), ...[...PROJECTION_TABLES, ...REFOLD_CACHES].map((t) => db.prepare(`DELETE FROM ${t}`))]);
}

/** A statement of the fold and the part of it it is. */
type Tagged = [D1PreparedStatement, FoldPart];

/** Table-name prefix: live projections, or a rebuild's shadow copies. */
export type Projection = "" | "shadow_";

const dims = (bucket: "m" | "h" | "d") => ({ bucket: `e.${bucket}`, key: "e.key", model: "e.model", client: "e.client" });

const statementsFor = (p: Projection) => ({
  rollups: [
    ...foldRollupSql(p, "rollup_minute", STAGE, dims("m")),
    ...foldRollupSql(p, "rollup_hour", STAGE, dims("h")),
    ...foldRollupSql(p, "rollup_day", STAGE, dims("d")),
    foldUpstreamSql(p, "rollup_upstream_minute", STAGE, { ...dims("m"), upstream: "e.up" }),
    foldUpstreamSql(p, "rollup_upstream_hour", STAGE, { ...dims("h"), upstream: "e.up" }),
    foldUpstreamSql(p, "rollup_upstream_day", STAGE, { ...dims("d"), upstream: "e.up" }),
    foldPoolHourSql(p, STAGE, "e.h"),
    foldClientDaySql(p, "ingest_stage AS e", {
      day: "e.d",
      client: "e.client",
      requests: "e.req",
      tokens: "e.tt",
      cost: "e.cost",
      unpriced: "e.unpriced",
      lastAt: "e.la",
    }),
  ],
  requests: [insertAttemptsSql(p), insertRequestsSql(p), recomputeRequestsSql(p)],
  health: mergeHealthSql(p),
  capacity: mergeCapacitySql(p),
  /** A batch of new events only: its ids join the window first (any seen one fails it), then its groups are staged. */
  allNew: { seen: insertSeenSql(p, true), stage: stageSql(p, false), audit: insertAuditSql(p, false), metrics: foldMetricsSql(p, false) },
  /** A batch with events seen before: its unseen attempts are staged one by one, then its ids join the window. */
  someSeen: { stage: stageSql(p, true), audit: insertAuditSql(p, true), seen: insertSeenSql(p, false), metrics: foldMetricsSql(p, true) },
});
const SQL = { live: statementsFor(""), shadow: statementsFor("shadow_") };

/**
 * Folds a batch into D1 in one transaction, so a failure leaves nothing
 * half-applied: the rollups fold from what is staged, key health merges its
 * order-independent facts, key capacity its latest rate-limit readings, the
 * audit log takes the admin events, the batch's ids
 * join the dedupe window and the stage is emptied. Nearly every batch is all new
 * events: it is folded as groups summed here, and its ids go into the window
 * first and strictly, so one id seen before fails the whole transaction. Then
 * (and whenever the fast transaction fails) the batch is folded again checking
 * each event against the window: a redelivered batch changes nothing, and a
 * partly redelivered one counts only its new events. The Prometheus counters
 * (metric_total) fold from the same attempts. At most twenty-three statements
 * whatever the batch size (twenty-four with attempts sent over an hour before).
 */
export async function ingestBatch(
  db: D1Database,
  rows: BatchRows,
  health: HealthRow[],
  capacity: CapacityRow[],
  projection: Projection = "",
  shard = 0,
  layout = foldLayoutOf(0, 1),
): Promise<void> {
  if (rows.seen.length === 0) return;
  const sql = projection === "" ? SQL.live : SQL.shadow;
  // Attempts sent over an hour before this fold may fall in the past hours whose sums the usage publish keeps
  // (storage/usage-kept.ts; window-count.ts: `lateBefore`): the fold adds them there too.
  const before = lateBefore(Date.now());
  const late = projection === "" && rows.attempts.some((a) => a.h < before);
  // Each statement with the part of the fold it is, for what D1 spends on each (d1-work.ts).
  const fold = (stage: string, stageRows: readonly (StageRow | AttemptRow)[], audit: string, metrics: string, metricRows: string): Tagged[] => {
    const statements: Tagged[] = [];
    if (stageRows.length > 0) {
      statements.push([db.prepare(stage).bind(JSON.stringify(stageRows.map(stageTuple))), "fold_stage"]);
      for (const rollup of sql.rollups) statements.push([db.prepare(rollup), "fold_rollups"]);
      if (late) statements.push([db.prepare(ADD_LATE_TO_KEPT_SQL), "fold_rollups"]);
      statements.push([db.prepare(metrics).bind(metricRows), "fold_other"]);
    }
    if (rows.log.length > 0) {
      // The request log: rows already there (a redelivery) are kept, and each request with attempts before its
      // final one has its row recomputed from them all.
      const log = JSON.stringify(rows.log);
      for (const statement of sql.requests) statements.push([db.prepare(statement).bind(log), "fold_request_log"]);
    }
    if (health.length > 0) statements.push([db.prepare(sql.health).bind(healthRowsParam(health)), "fold_key_state"]);
    if (capacity.length > 0) statements.push([db.prepare(sql.capacity).bind(capacityRowsParam(capacity)), "fold_key_state"]);
    if (rows.admin.length > 0) statements.push([db.prepare(audit).bind(JSON.stringify(rows.admin)), "fold_other"]);
    return statements;
  };
  const seen = JSON.stringify(rows.seen);
  // First in each transaction: the database holds the fold's layout, or the whole transaction fails (fold-layout.ts).
  const checkLayout: Tagged = [db.prepare(CHECK_LAYOUT_SQL).bind(layout), "fold_other"];
  const clear: Tagged[] = rows.attempts.length > 0 ? [[db.prepare(CLEAR_STAGE), "fold_stage"]] : [];
  // Consumer lag and what D1 spent on earlier work are live figures, not projections: a rebuild leaves them alone
  // (and its own time is not counted).
  const work = projection === "" ? takeD1Work(db, shard) : null;
  const liveFigures: Tagged[] =
    projection === ""
      ? [
          [db.prepare(newestFoldedSql()).bind(rows.seen.reduce((m, e) => Math.max(m, e.ts), 0)), "fold_other"],
          ...(work ? [[work.statement, "fold_other"] as Tagged] : []),
        ]
      : [];
  /** Runs the statements as one transaction, and counts what D1 spent on each part once it committed. */
  const commit = async (tagged: Tagged[]) => {
    const results = await db.batch(tagged.map(([statement]) => statement));
    if (projection !== "") return;
    for (const part of new Set(tagged.map(([, p]) => p)))
      countD1Work(
        part,
        results.filter((_, i) => tagged[i]![1] === part),
        shard,
      );
    countFoldedEvents(rows.seen.length, shard);
  };
  try {
    await commit([
      checkLayout,
      [db.prepare(sql.allNew.seen).bind(seen), "fold_dedupe"],
      ...fold(sql.allNew.stage, rows.groups, sql.allNew.audit, sql.allNew.metrics, metricRowsParam(rows.metrics)),
      ...clear,
      ...liveFigures,
    ]);
    return;
  } catch {
    // An id seen before (a redelivery), or D1 failing: fold event by event, which settles both.
  }
  const metricEvents = rows.attempts.map((a) => ({ id: a.id, ts: a.ts }));
  try {
    await commit([
      checkLayout,
      ...fold(sql.someSeen.stage, rows.attempts, sql.someSeen.audit, sql.someSeen.metrics, metricRowsParam(rows.metricAttempts, metricEvents)),
      [db.prepare(sql.someSeen.seen).bind(seen), "fold_dedupe"],
      ...clear,
      ...liveFigures,
    ]);
  } catch (err) {
    if (work) restoreD1Work(work.taken, shard);
    throw err;
  }
}

/** A database's layout checked (or recorded) alone, for a batch that has nothing for it. */
async function checkLayout(db: D1Database, layout: string): Promise<void> {
  await db.prepare(CHECK_LAYOUT_SQL).bind(layout).run();
}

/**
 * Folds a batch's events into the fold's databases — one, or several by key
 * (`foldShards`) — each in its own transaction, all at once. If any fails the
 * whole batch is retried: those that committed see its ids in their dedupe
 * windows and change nothing. Each transaction first checks that its database
 * holds the layout it folds under (the list's, or a refold's `layout`); one that
 * does not fails the batch with what changed and what to do. The first database
 * checks its layout for every batch, even one with nothing for it (with several,
 * it holds no key's rows): a list that grew is told by the first, whose layout
 * it changes ("1/1" → "1/9"), while the databases added hold none yet and would
 * take their parts.
 */
export async function foldEvents(
  dbs: FoldDatabases,
  events: KeypoolEvent[],
  settings: Settings,
  prices: PriceBook,
  projection: Projection = "",
  layout?: string,
): Promise<void> {
  const shards = foldShards(events, dbs.length, settings, prices);
  const layoutOf = (i: number) => layout ?? foldLayoutOf(i, dbs.length);
  const outcomes = await Promise.allSettled(
    shards.map((s, i) =>
      i === 0 && s.rows.seen.length === 0 ? checkLayout(dbs[0], layoutOf(0)) : ingestBatch(dbs[i]!, s.rows, s.health, s.capacity, projection, i, layoutOf(i)),
    ),
  );
  const failed = outcomes.find((o): o is PromiseRejectedResult => o.status === "rejected");
  if (!failed) return;
  if (isLayoutRefusal(failed.reason)) {
    const layouts = await readFoldLayouts(dbs).catch(() => null);
    throw new FoldLayoutRefused(layouts ? layoutRefusalMessage(layouts) : "the fold databases hold another layout than this Worker binds", {
      cause: failed.reason,
    });
  }
  throw failed.reason;
}
