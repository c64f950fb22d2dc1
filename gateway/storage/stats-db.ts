import type { BucketTotals, MetricSums, StatsFilters } from "../logic/stats";

export type RollupTable = "rollup_minute" | "rollup_hour" | "rollup_day";

/** Requests and tokens per bucket of `table` for buckets in [from, to], oldest first. */
export async function bucketTotals(db: D1Database, table: RollupTable, from: number, to: number): Promise<BucketTotals[]> {
  const { results } = await db
    .prepare(
      `SELECT bucket, SUM(requests) AS requests, SUM(total_tokens) AS tokens
       FROM ${table} WHERE bucket >= ?1 AND bucket <= ?2 GROUP BY bucket ORDER BY bucket`,
    )
    .bind(from, to)
    .all<BucketTotals>();
  return results;
}

/** The metric columns every series point and breakdown row carries, summed. */
const METRICS = `SUM(requests) AS requests, SUM(attempts) AS attempts, SUM(successes) AS successes,
  SUM(rate_limited) AS rateLimited, SUM(auth_failed + no_balance + upstream_error + network_error) AS failures,
  SUM(client_error) AS clientErrors, SUM(aborted) AS aborted,
  SUM(prompt_tokens) AS promptTokens, SUM(completion_tokens) AS completionTokens, SUM(total_tokens) AS tokens,
  SUM(estimated_tokens) AS estimatedTokens, SUM(latency_ms_sum) AS latencySum, MAX(latency_ms_max) AS latencyMax,
  SUM(ttfb_ms_sum) AS ttfbSum, SUM(ttfb_count) AS ttfbCount`;

/** The WHERE clause for a bucket range and the dimension filters, with its bindings. */
function whereClause(from: number, to: number, f: StatsFilters): { sql: string; params: unknown[] } {
  const parts = ["bucket >= ?1", "bucket <= ?2"];
  const params: unknown[] = [from, to];
  const add = (sql: string, value: string) => {
    params.push(value);
    parts.push(sql.replace("?", `?${params.length}`));
  };
  if (f.keyId) add("key_id = ?", f.keyId);
  if (f.model) add("model = ?", f.model);
  if (f.clientKeyId) add("client_key_id = ?", f.clientKeyId);
  if (f.upstreamId) add("key_id IN (SELECT id FROM keys WHERE upstream_id = ?)", f.upstreamId);
  return { sql: parts.join(" AND "), params };
}

/** True when no dimension filter is set: the whole pool. */
const wholePool = (f: StatsFilters) => !f.keyId && !f.model && !f.clientKeyId && !f.upstreamId;

/**
 * Every metric per bucket in [from, to] matching the filters, oldest first. The whole
 * pool's hourly series reads the pool-wide hour rollup (one row an hour) instead of
 * summing every key × model × client row of the hour.
 */
export async function seriesRows(db: D1Database, table: RollupTable, from: number, to: number, filters: StatsFilters): Promise<(MetricSums & { bucket: number })[]> {
  const where = whereClause(from, to, filters);
  const source = table === "rollup_hour" && wholePool(filters) ? "rollup_pool_hour" : table;
  const { results } = await db
    .prepare(`SELECT bucket, ${METRICS} FROM ${source} WHERE ${where.sql} GROUP BY bucket ORDER BY bucket`)
    .bind(...where.params)
    .all<MetricSums & { bucket: number }>();
  return results;
}

/** The dimension a breakdown groups by, as a SQL expression over the rollup. */
const GROUP_BY = {
  model: "model",
  key: "key_id",
  client: "client_key_id",
  upstream: "COALESCE((SELECT upstream_id FROM keys WHERE keys.id = key_id), '')",
} as const;
export type BreakdownBy = keyof typeof GROUP_BY;

/** Every metric per value of `by` over [from, to], busiest first (at most `limit` rows). */
export async function breakdownRows(
  db: D1Database,
  table: RollupTable,
  from: number,
  to: number,
  by: BreakdownBy,
  filters: StatsFilters,
  limit: number,
): Promise<(MetricSums & { id: string })[]> {
  const where = whereClause(from, to, filters);
  const { results } = await db
    .prepare(`SELECT ${GROUP_BY[by]} AS id, ${METRICS} FROM ${table} WHERE ${where.sql} GROUP BY 1 ORDER BY requests DESC, attempts DESC LIMIT ${limit}`)
    .bind(...where.params)
    .all<MetricSums & { id: string }>();
  return results;
}

/** Requests and tokens over [from, to) exactly: minute rollups for the ragged first hour, hour rollups after it. */
export async function rollingTotals(db: D1Database, from: number, to: number): Promise<{ requests: number; tokens: number }> {
  const firstFullHour = Math.ceil(from / 3_600_000) * 3_600_000;
  const [minutes, hours] = await db.batch<{ requests: number | null; tokens: number | null }>([
    db.prepare("SELECT SUM(requests) AS requests, SUM(total_tokens) AS tokens FROM rollup_minute WHERE bucket >= ?1 AND bucket < ?2").bind(from, firstFullHour),
    db.prepare("SELECT SUM(requests) AS requests, SUM(total_tokens) AS tokens FROM rollup_pool_hour WHERE bucket >= ?1 AND bucket < ?2").bind(firstFullHour, to),
  ]);
  const m = minutes!.results[0];
  const h = hours!.results[0];
  return { requests: (m?.requests ?? 0) + (h?.requests ?? 0), tokens: (m?.tokens ?? 0) + (h?.tokens ?? 0) };
}
