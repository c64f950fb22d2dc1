import { D1_WORKS, D1_WORK_PREFIX, HOUR_MS, LATENCY_BOUNDS_S, emptyBuckets, type D1Work, type MetricRow } from "../schema";
import { seenSql } from "./dedupe-window";
import type { FoldDatabases } from "./fold-databases";

/**
 * The `metric_total` table (migration 0017): Prometheus counters by upstream and
 * model since `metrics_counted_since`, with latency and time-to-first-byte
 * histograms. Written by the consumer in the batch's transaction (a projection
 * of the event log, rebuilt by a full replay); read by `/metrics`.
 */

const FIELDS = [
  "upstream",
  "model",
  "h",
  "req",
  "n",
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
  "cost",
  "unpriced",
  "ls",
  "lb",
  "fs",
  "fc",
  "fb",
] as const;
/** The table's columns for FIELDS[3..] in order. */
const COLUMNS = [
  "requests",
  "attempts",
  "ok",
  "rate_limited",
  "auth_failed",
  "no_balance",
  "upstream_error",
  "network_error",
  "client_error",
  "aborted",
  "prompt_tokens",
  "completion_tokens",
  "cost_micros",
  "unpriced",
  "latency_ms_sum",
  "latency_buckets",
  "ttfb_ms_sum",
  "ttfb_count",
  "ttfb_buckets",
] as const;

/** The JSON parameter of `foldMetricsSql`: rows as arrays in FIELDS order, each attempt's id and time after them when given. */
export function metricRowsParam(rows: MetricRow[], events?: { id: string; ts: number }[]): string {
  return JSON.stringify(rows.map((r, i) => (events ? [...FIELDS.map((f) => r[f]), events[i]!.id, events[i]!.ts] : FIELDS.map((f) => r[f]))));
}

const addBuckets = (col: string, prefix: string) =>
  `(SELECT json_group_array(v) FROM (SELECT a.value + b.value AS v FROM json_each(${prefix}metric_total.${col}) a JOIN json_each(excluded.${col}) b ON a.key = b.key ORDER BY a.key))`;

/**
 * Adds the rows of `metricRowsParam` (`?1`) to `${prefix}metric_total`, one row at
 * a time (so rows of one upstream and model need no grouping here), skipping
 * hours wholly before `metrics_counted_since` — and, with `unseenOnly`,
 * attempts the dedupe window has seen (run it before their ids join the window).
 */
export function foldMetricsSql(prefix: string, unseenOnly: boolean): string {
  const at = (f: (typeof FIELDS)[number]) => FIELDS.indexOf(f);
  const value = (f: (typeof FIELDS)[number]) => (f === "lb" || f === "fb" ? `value->${at(f)}` : `value->>${at(f)}`);
  return `INSERT INTO ${prefix}metric_total (upstream_id, model, ${COLUMNS.join(", ")})
  SELECT ${FIELDS.filter((f) => f !== "h")
    .map(value)
    .join(", ")}
  FROM json_each(?1)
  WHERE value->>${at("h")} + ${HOUR_MS} > (SELECT value FROM meta WHERE name = 'metrics_counted_since')${
    unseenOnly ? ` AND NOT ${seenSql(prefix, `value->>${FIELDS.length}`, `value->>${FIELDS.length + 1}`)}` : ""
  }
  ON CONFLICT (upstream_id, model) DO UPDATE SET
    ${COLUMNS.map((c) => (c.endsWith("_buckets") ? `${c} = ${addBuckets(c, prefix)}` : `${c} = ${c} + excluded.${c}`)).join(",\n    ")}`;
}

/** Records the newest event a batch folded (consumer lag on /metrics). */
export function newestFoldedSql(): string {
  return `UPDATE meta SET value = MAX(value, ?1) WHERE name = 'newest_folded_ts'`;
}

/** What D1 spent on each work of the consumer since the count began, and the events its folds committed. */
export interface D1WorkTotals {
  seconds: Record<D1Work, number>;
  /** Each fold database's seconds, every work of the consumer's added up: DB first, then DB_2, DB_3… */
  secondsByDatabase: number[];
  rowsWritten: Record<D1Work, number>;
  foldedEvents: number;
}

/** A row of `metric_total` as `/metrics` reads it. */
export interface MetricTotal {
  upstreamId: string;
  model: string;
  requests: number;
  attempts: number;
  outcomes: Record<"ok" | "rate_limited" | "auth_failed" | "no_balance" | "upstream_error" | "network_error" | "client_error" | "aborted", number>;
  promptTokens: number;
  completionTokens: number;
  costMicros: number;
  unpriced: number;
  latencyMsSum: number;
  latencyBuckets: number[];
  ttfbMsSum: number;
  ttfbCount: number;
  ttfbBuckets: number[];
}

/**
 * Every counter row, the consumer's newest folded event and dead letters archived, and what D1 spent on its work —
 * over the fold's databases: counters and D1's work added up, the newest event the newest of any, dead letters the
 * first's (where the consumer counts them).
 */
export async function readMetricTotals(dbs: FoldDatabases): Promise<{ totals: MetricTotal[]; newestFoldedTs: number; deadLetters: number; d1: D1WorkTotals }> {
  const parts = await Promise.all(
    dbs.map((db) =>
      db.batch<Record<string, unknown>>([
        db.prepare("SELECT * FROM metric_total ORDER BY upstream_id, model"),
        db.prepare(
          `SELECT name, value FROM meta WHERE name IN ('newest_folded_ts', 'dead_letters_total') OR substr(name, 1, ${D1_WORK_PREFIX.length}) = '${D1_WORK_PREFIX}'`,
        ),
      ]),
    ),
  );
  const metas = parts.map(([, meta]) => new Map(meta!.results.map((r) => [String(r.name), Number(r.value)])));
  const added = (name: string) => metas.reduce((n, m) => n + (m.get(name) ?? 0), 0);
  const byWork = (suffix: string, scale: number) =>
    Object.fromEntries(D1_WORKS.map((w) => [w, added(`${D1_WORK_PREFIX}${w}_${suffix}`) * scale])) as Record<D1Work, number>;
  const buckets = (v: unknown) => {
    const parsed = JSON.parse(String(v ?? "[]")) as number[];
    return parsed.length === LATENCY_BOUNDS_S.length + 1 ? parsed : emptyBuckets();
  };
  const totals = new Map<string, MetricTotal>();
  for (const r of parts.flatMap(([rows]) => rows!.results)) {
    const row: MetricTotal = {
      upstreamId: String(r.upstream_id),
      model: String(r.model),
      requests: Number(r.requests),
      attempts: Number(r.attempts),
      outcomes: {
        ok: Number(r.ok),
        rate_limited: Number(r.rate_limited),
        auth_failed: Number(r.auth_failed),
        no_balance: Number(r.no_balance),
        upstream_error: Number(r.upstream_error),
        network_error: Number(r.network_error),
        client_error: Number(r.client_error),
        aborted: Number(r.aborted),
      },
      promptTokens: Number(r.prompt_tokens),
      completionTokens: Number(r.completion_tokens),
      costMicros: Number(r.cost_micros),
      unpriced: Number(r.unpriced),
      latencyMsSum: Number(r.latency_ms_sum),
      latencyBuckets: buckets(r.latency_buckets),
      ttfbMsSum: Number(r.ttfb_ms_sum),
      ttfbCount: Number(r.ttfb_count),
      ttfbBuckets: buckets(r.ttfb_buckets),
    };
    const id = JSON.stringify([row.upstreamId, row.model]);
    const into = totals.get(id);
    totals.set(id, into ? addTotals(into, row) : row);
  }
  return {
    totals: [...totals.values()].sort((a, b) =>
      a.upstreamId < b.upstreamId ? -1 : a.upstreamId > b.upstreamId ? 1 : a.model < b.model ? -1 : a.model > b.model ? 1 : 0,
    ),
    newestFoldedTs: Math.max(0, ...metas.map((m) => m.get("newest_folded_ts") ?? 0)),
    deadLetters: metas[0]!.get("dead_letters_total") ?? 0,
    d1: {
      seconds: byWork("us", 1e-6),
      secondsByDatabase: metas.map((m) => D1_WORKS.reduce((sum, w) => sum + (m.get(`${D1_WORK_PREFIX}${w}_us`) ?? 0), 0) * 1e-6),
      rowsWritten: byWork("rows_written", 1),
      foldedEvents: added(`${D1_WORK_PREFIX}fold_events`),
    },
  };
}

/** Two databases' counters of one upstream and model, added up. */
function addTotals(a: MetricTotal, b: MetricTotal): MetricTotal {
  const outcomes = Object.fromEntries(
    Object.entries(a.outcomes).map(([k, v]) => [k, v + b.outcomes[k as keyof MetricTotal["outcomes"]]]),
  ) as MetricTotal["outcomes"];
  return {
    ...a,
    requests: a.requests + b.requests,
    attempts: a.attempts + b.attempts,
    outcomes,
    promptTokens: a.promptTokens + b.promptTokens,
    completionTokens: a.completionTokens + b.completionTokens,
    costMicros: a.costMicros + b.costMicros,
    unpriced: a.unpriced + b.unpriced,
    latencyMsSum: a.latencyMsSum + b.latencyMsSum,
    latencyBuckets: a.latencyBuckets.map((n, i) => n + (b.latencyBuckets[i] ?? 0)),
    ttfbMsSum: a.ttfbMsSum + b.ttfbMsSum,
    ttfbCount: a.ttfbCount + b.ttfbCount,
    ttfbBuckets: a.ttfbBuckets.map((n, i) => n + (b.ttfbBuckets[i] ?? 0)),
  };
}

/** Adds archived dead letters to their count. */
export function countDeadLetters(db: D1Database, n: number): Promise<unknown> {
  return db.prepare("UPDATE meta SET value = value + ?1 WHERE name = 'dead_letters_total'").bind(n).run();
}

/** The scrape token's hash and when it was made, or null when none is set. */
export async function readScrapeToken(db: D1Database): Promise<{ hash: string; createdAt: number } | null> {
  const row = await db.prepare("SELECT token_hash, created_at FROM metrics_access WHERE id = 1").first<{ token_hash: string; created_at: number }>();
  return row ? { hash: row.token_hash, createdAt: row.created_at } : null;
}

/** Sets the scrape token (its SHA-256), replacing the one before. */
export async function setScrapeToken(db: D1Database, hash: string, createdAt: number): Promise<void> {
  await db
    .prepare(
      "INSERT INTO metrics_access (id, token_hash, created_at) VALUES (1, ?1, ?2) ON CONFLICT (id) DO UPDATE SET token_hash = excluded.token_hash, created_at = excluded.created_at",
    )
    .bind(hash, createdAt)
    .run();
}

/** Removes the scrape token; whether there was one. */
export async function clearScrapeToken(db: D1Database): Promise<boolean> {
  const result = await db.prepare("DELETE FROM metrics_access WHERE id = 1").run();
  return (result.meta.changes ?? 0) > 0;
}
