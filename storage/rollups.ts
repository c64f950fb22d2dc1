import { DAY_MS, HOUR_MS, MINUTE_MS, UPSTREAM_MINUTE_HOURS, ZONE_SETTLED_MS, hourStart, rollupRowsFor, type Settings, type StatsBucket } from "../schema";
import type { BucketTotals, CountTerm, MetricSums, SpendSums, StatsFilters } from "./rollup-sums";
import { namesOf, upstreamKeyIds, type FoldDatabases } from "./fold-databases";

/**
 * The rollup tables: usage summed per minute, hour and day, per key × model,
 * per client key × model and per upstream × model, and per hour for the whole
 * pool. Written by the consumer (one fold per batch); read by the admin API
 * (stats, key and client-key lists) and the consumer (the snapshot's success
 * rates, the pool's usage); pruned by the scheduler.
 *
 * The keyed tables hold two kinds of rows (migration 0020): a key's, summed
 * over client keys (`client_key_id` is `ALL`), and a client key's, summed over
 * keys (`key_id` is `ALL`). Key × model × client rows made nearly every request
 * a row of its own in a large pool; these are bounded by keys × models plus
 * client keys × models a bucket. Every read names the kind it sums
 * (`KEY_ROWS`, `CLIENT_ROWS`): summing both would count each attempt twice.
 *
 * The upstream tables (migration 0021) hold the same usage per upstream ×
 * model, at most upstreams × models rows a bucket however many keys there are:
 * they answer every read that names neither a key nor a client key — the
 * dashboard's pool-wide series, its breakdowns by model and by upstream, the
 * summary — which would otherwise sum every key's rows of the range.
 */

/** How long each table's bucket is, and how long the retention settings keep its rows. */
export const ROLLUP_TABLES = {
  rollup_minute: { widthMs: MINUTE_MS, keptMs: (s: Settings) => s.retention.minuteRollupHours * HOUR_MS },
  rollup_hour: { widthMs: HOUR_MS, keptMs: (s: Settings) => s.retention.hourRollupDays * DAY_MS },
  rollup_pool_hour: { widthMs: HOUR_MS, keptMs: (s: Settings) => s.retention.hourRollupDays * DAY_MS },
  // A local day lasts 23 to 25 hours (daylight saving time); days start at midnight in the settings' time zone.
  rollup_day: { widthMs: DAY_MS + HOUR_MS, keptMs: (s: Settings) => s.retention.dayRollupDays * DAY_MS },
  // The summary's last 24 hours reads the pool's minutes (by upstream) back to a day ago, whatever keys' minutes are kept.
  rollup_upstream_minute: { widthMs: MINUTE_MS, keptMs: (s: Settings) => Math.max(s.retention.minuteRollupHours, UPSTREAM_MINUTE_HOURS) * HOUR_MS },
  rollup_upstream_hour: { widthMs: HOUR_MS, keptMs: (s: Settings) => s.retention.hourRollupDays * DAY_MS },
  rollup_upstream_day: { widthMs: DAY_MS + HOUR_MS, keptMs: (s: Settings) => s.retention.dayRollupDays * DAY_MS },
  rollup_client_day: { widthMs: DAY_MS + HOUR_MS, keptMs: (s: Settings) => s.retention.dayRollupDays * DAY_MS },
} as const;

export type RollupTable = keyof typeof ROLLUP_TABLES;
/** The tables of key rows and client rows by model. */
export type KeyedRollupTable = `rollup_${StatsBucket}`;
/** The tables of upstream × model rows. */
export type UpstreamRollupTable = `rollup_upstream_${StatsBucket}`;

/** Stands for "every one" in the dimension a row is summed over. */
const ALL = "*";
/** The condition that picks a key's rows (summed over client keys) from a keyed table. */
export const KEY_ROWS = `client_key_id = '${ALL}'`;
/** The condition that picks a client key's rows (summed over keys) from a keyed table. */
const CLIENT_ROWS = `key_id = '${ALL}'`;

/** The instant (epoch ms) before which each table's rows are past retention. */
export function rollupCutoffs(settings: Settings, now: number): Record<RollupTable, number> {
  const cut = (t: RollupTable) => now - ROLLUP_TABLES[t].keptMs(settings);
  return {
    rollup_minute: cut("rollup_minute"),
    rollup_hour: cut("rollup_hour"),
    rollup_pool_hour: cut("rollup_pool_hour"),
    rollup_day: cut("rollup_day"),
    rollup_upstream_minute: cut("rollup_upstream_minute"),
    rollup_upstream_hour: cut("rollup_upstream_hour"),
    rollup_upstream_day: cut("rollup_upstream_day"),
    rollup_client_day: cut("rollup_client_day"),
  };
}

/**
 * The oldest bucket start of a size that retention keeps at `now`, of keys' and client keys' rows or of the pool's by
 * upstream: rows of buckets that start before it may be pruned already (the scheduler deletes them on its runs), so a
 * read reaching further back reads zeros there.
 */
export function rollupsKeptFrom(settings: Settings, bucket: StatsBucket, now: number, rows: "key" | "client" | "upstream" = "key"): number {
  const table: RollupTable = rows === "upstream" ? `rollup_upstream_${bucket}` : `rollup_${bucket}`;
  return now - ROLLUP_TABLES[table].keptMs(settings);
}

/** Deletes every table's rows past its cutoff, one statement a table (for the caller's batch). */
export function pruneRollups(db: D1Database, cutoffs: Record<RollupTable, number>): { table: RollupTable; statement: D1PreparedStatement }[] {
  return (Object.keys(ROLLUP_TABLES) as RollupTable[]).map((table) => ({
    table,
    statement: db.prepare(`DELETE FROM ${table} WHERE bucket < ?1`).bind(cutoffs[table]),
  }));
}

/** A condition on `bucket` that holds for the buckets of `table` wholly inside [from, to) (`?1`, `?2`), for comparing a range. */
export function bucketsWithinSql(table: RollupTable): string {
  return `bucket >= ?1 AND bucket + ${ROLLUP_TABLES[table].widthMs} <= ?2`;
}

// ---------------------------------------------------------------------------
// The fold

/** Every rollup table's measure columns, in one order, and how two values combine: counts and sums add up, maxima keep the larger. */
const ROLLUP_MEASURES = [
  ["attempts", "sum"],
  ["requests", "sum"],
  ["successes", "sum"],
  ["rate_limited", "sum"],
  ["auth_failed", "sum"],
  ["no_balance", "sum"],
  ["upstream_error", "sum"],
  ["network_error", "sum"],
  ["client_error", "sum"],
  ["aborted", "sum"],
  ["prompt_tokens", "sum"],
  ["completion_tokens", "sum"],
  ["total_tokens", "sum"],
  ["estimated_tokens", "sum"],
  ["cached_tokens", "sum"],
  ["reasoning_tokens", "sum"],
  ["latency_ms_sum", "sum"],
  ["latency_ms_max", "max"],
  ["ttfb_ms_sum", "sum"],
  ["ttfb_ms_max", "max"],
  ["ttfb_count", "sum"],
  ["cost_micros", "sum"],
  ["unpriced", "sum"],
  ["last_at", "max"],
] as const;
export type RollupMeasure = (typeof ROLLUP_MEASURES)[number][0];

/** Where a fold reads from: a FROM clause, and per measure the column (of one source row) it sums or takes the maximum of. */
export interface FoldSource {
  from: string;
  measures: Record<RollupMeasure, string>;
}

const measureList = ROLLUP_MEASURES.map(([m]) => m).join(", ");
const aggregates = (source: FoldSource) => ROLLUP_MEASURES.map(([m, how]) => `${how === "max" ? "MAX" : "SUM"}(${source.measures[m]})`).join(", ");
const accumulate = ROLLUP_MEASURES.map(([m, how]) => (how === "max" ? `${m} = MAX(${m}, excluded.${m})` : `${m} = ${m} + excluded.${m}`)).join(",\n      ");

/**
 * Sums the source's rows per bucket, key and model, and per bucket, client key
 * and model (the expressions in `dims`), and adds them to `${prefix}${table}`'s
 * key rows and client rows, creating those that are missing: two statements.
 */
export function foldRollupSql(
  prefix: string,
  table: KeyedRollupTable,
  source: FoldSource,
  dims: { bucket: string; key: string; model: string; client: string },
): [keyRows: string, clientRows: string] {
  const fold = (key: string, client: string, group: string) => `INSERT INTO ${prefix}${table} (bucket, key_id, model, client_key_id, ${measureList})
    SELECT ${dims.bucket}, ${key}, ${dims.model}, ${client}, ${aggregates(source)}
    FROM ${source.from}
    GROUP BY ${group}
    ON CONFLICT (bucket, key_id, model, client_key_id) DO UPDATE SET ${accumulate}`;
  return [
    fold(dims.key, `'${ALL}'`, `${dims.bucket}, ${dims.key}, ${dims.model}`),
    fold(`'${ALL}'`, dims.client, `${dims.bucket}, ${dims.client}, ${dims.model}`),
  ];
}

/** Sums the source's rows per bucket, upstream and model (the expressions in `dims`) into `${prefix}${table}`, creating the rows that are missing. */
export function foldUpstreamSql(
  prefix: string,
  table: UpstreamRollupTable,
  source: FoldSource,
  dims: { bucket: string; upstream: string; model: string },
): string {
  return `INSERT INTO ${prefix}${table} (bucket, upstream_id, model, ${measureList})
    SELECT ${dims.bucket}, ${dims.upstream}, ${dims.model}, ${aggregates(source)}
    FROM ${source.from}
    GROUP BY ${dims.bucket}, ${dims.upstream}, ${dims.model}
    ON CONFLICT (bucket, upstream_id, model) DO UPDATE SET ${accumulate}`;
}

/** Sums the source's rows per hour (the expression `hour`) into `${prefix}rollup_pool_hour`: the whole pool, one row an hour. */
export function foldPoolHourSql(prefix: string, source: FoldSource, hour: string): string {
  return `INSERT INTO ${prefix}rollup_pool_hour (bucket, ${measureList})
    SELECT ${hour}, ${aggregates(source)}
    FROM ${source.from}
    GROUP BY ${hour}
    ON CONFLICT (bucket) DO UPDATE SET ${accumulate}`;
}

/**
 * Sums the source's rows per day and client key into `${prefix}rollup_client_day`
 * (migration 0014): what client quotas are counted against. `cols` names the
 * source's day, client, requests, tokens, cost, unpriced and latest-send columns.
 */
export function foldClientDaySql(
  prefix: string,
  from: string,
  cols: { day: string; client: string; requests: string; tokens: string; cost: string; unpriced: string; lastAt: string },
): string {
  return `INSERT INTO ${prefix}rollup_client_day (bucket, client_key_id, requests, total_tokens, cost_micros, unpriced, last_at)
    SELECT ${cols.day}, ${cols.client}, SUM(${cols.requests}), SUM(${cols.tokens}), SUM(${cols.cost}), SUM(${cols.unpriced}), MAX(${cols.lastAt})
    FROM ${from}
    GROUP BY ${cols.day}, ${cols.client}
    ON CONFLICT (client_key_id, bucket) DO UPDATE SET requests = requests + excluded.requests, total_tokens = total_tokens + excluded.total_tokens,
      cost_micros = cost_micros + excluded.cost_micros, unpriced = unpriced + excluded.unpriced, last_at = MAX(last_at, excluded.last_at)`;
}

// ---------------------------------------------------------------------------
// Reading

/** Which rows answer a read (`rollupRowsFor`): a keyed table's key rows or client rows, or an upstream table's rows. */
type Rows = "key" | "client" | "upstream";

/** The table holding `rows` at a bucket size. */
function tableOf(rows: Rows, bucket: StatsBucket): KeyedRollupTable | UpstreamRollupTable {
  return rows === "upstream" ? `rollup_upstream_${bucket}` : `rollup_${bucket}`;
}

/**
 * Each of the fold's databases' results of one read, at once. A read over
 * several adds up what each holds (a key's rows are in one of them; the client
 * keys', upstreams' and pool's rows are split over all).
 */
function onEach<T>(dbs: FoldDatabases, read: (db: D1Database) => Promise<T>): Promise<T[]> {
  return Promise.all(dbs.map(read));
}

/** Requests and tokens per bucket of a size for buckets in [from, to], oldest first: the whole pool. */
export async function bucketTotals(dbs: FoldDatabases, bucket: StatsBucket, from: number, to: number): Promise<BucketTotals[]> {
  const parts = await onEach(dbs, async (db) => {
    const { results } = await db
      .prepare(
        `SELECT bucket, SUM(requests) AS requests, SUM(total_tokens) AS tokens
         FROM ${tableOf("upstream", bucket)} WHERE bucket >= ?1 AND bucket <= ?2 GROUP BY bucket ORDER BY bucket`,
      )
      .bind(from, to)
      .all<BucketTotals>();
    return results;
  });
  if (parts.length === 1) return parts[0]!;
  const byBucket = new Map<number, BucketTotals>();
  for (const row of parts.flat()) {
    const into = byBucket.get(row.bucket);
    if (!into) byBucket.set(row.bucket, { ...row });
    else {
      into.requests += row.requests;
      into.tokens += row.tokens;
    }
  }
  return [...byBucket.values()].sort((a, b) => a.bucket - b.bucket);
}

/** Spend today and this month (days from `month` on, today from `today` on): micro-units, and attempts with usage but no price. */
export async function spendTotals(dbs: FoldDatabases, month: number, today: number): Promise<{ today: SpendSums; month: SpendSums }> {
  const rows = await onEach(dbs, (db) =>
    db
      .prepare(
        `SELECT SUM(CASE WHEN bucket >= ?2 THEN cost_micros ELSE 0 END) AS todayCost, SUM(CASE WHEN bucket >= ?2 THEN unpriced ELSE 0 END) AS todayUnpriced,
           SUM(cost_micros) AS monthCost, SUM(unpriced) AS monthUnpriced
         FROM rollup_upstream_day WHERE bucket >= ?1`,
      )
      .bind(month, today)
      .first<Record<string, number | null>>(),
  );
  const sum = (field: string) => rows.reduce((n, row) => n + Number(row?.[field] ?? 0), 0);
  return {
    today: { costMicros: sum("todayCost"), unpriced: sum("todayUnpriced") },
    month: { costMicros: sum("monthCost"), unpriced: sum("monthUnpriced") },
  };
}

/** The metric columns every series point and breakdown row carries, summed. */
const METRIC_COLUMNS: [name: keyof MetricSums, of: string, how: "SUM" | "MAX"][] = [
  ["requests", "requests", "SUM"],
  ["attempts", "attempts", "SUM"],
  ["successes", "successes", "SUM"],
  ["rateLimited", "rate_limited", "SUM"],
  ["failures", "auth_failed + no_balance + upstream_error + network_error", "SUM"],
  ["clientErrors", "client_error", "SUM"],
  ["aborted", "aborted", "SUM"],
  ["promptTokens", "prompt_tokens", "SUM"],
  ["completionTokens", "completion_tokens", "SUM"],
  ["tokens", "total_tokens", "SUM"],
  ["estimatedTokens", "estimated_tokens", "SUM"],
  ["latencySum", "latency_ms_sum", "SUM"],
  ["latencyMax", "latency_ms_max", "MAX"],
  ["ttfbSum", "ttfb_ms_sum", "SUM"],
  ["ttfbCount", "ttfb_count", "SUM"],
  ["costMicros", "cost_micros", "SUM"],
  ["unpriced", "unpriced", "SUM"],
];
const METRICS = METRIC_COLUMNS.map(([name, of, how]) => `${how}(${of}) AS ${name}`).join(", ");
/** METRICS again over rows that carry them already (a sub-query's), for a second grouping. */
const METRICS_OF_METRICS = METRIC_COLUMNS.map(([name, , how]) => `${how}(${name}) AS ${name}`).join(", ");

/** Rows of several databases (or several rows of one) that share `idOf`, their metrics summed as the SQL sums them: maxima kept. */
function sumRows<T extends MetricSums>(rows: readonly T[], idOf: (row: T) => string | number): T[] {
  const out = new Map<string | number, T>();
  for (const row of rows) {
    const id = idOf(row);
    const into = out.get(id);
    if (!into) {
      out.set(id, { ...row });
      continue;
    }
    for (const [name, , how] of METRIC_COLUMNS) into[name] = how === "MAX" ? Math.max(into[name], row[name]) : into[name] + row[name];
  }
  return [...out.values()];
}

/** The kind of rows that answer a read (`rollupRowsFor`), for callers that validated the query already. */
function rowsOrThrow(f: StatsFilters, by?: BreakdownBy): Rows {
  const rows = rollupRowsFor({ ...f, by });
  if (!rows) throw new RangeError("No rollup rows hold a client key together with a key or an upstream.");
  return rows;
}

/**
 * The WHERE clause for a bucket range and the dimension filters over `rows`, with its bindings. An upstream over key
 * rows is its keys: looked up in `keys` where the database holds them, else the JSON list `upstreamKeys` (one of
 * several fold databases does not hold the configuration).
 */
function whereClause(from: number, to: number, f: StatsFilters, rows: Rows, upstreamKeys: string | null): { sql: string; params: unknown[] } {
  const parts = ["bucket >= ?1", "bucket <= ?2"];
  if (rows !== "upstream") parts.push(rows === "key" ? KEY_ROWS : CLIENT_ROWS);
  const params: unknown[] = [from, to];
  const add = (sql: string, value: string) => {
    params.push(value);
    parts.push(sql.replace("?", `?${params.length}`));
  };
  if (f.keyId) add("key_id = ?", f.keyId);
  if (f.model) add("model = ?", f.model);
  if (f.clientKeyId) add("client_key_id = ?", f.clientKeyId);
  if (f.upstreamId) {
    if (rows === "upstream") add("upstream_id = ?", f.upstreamId);
    else if (upstreamKeys === null) add("key_id IN (SELECT id FROM keys WHERE upstream_id = ?)", f.upstreamId);
    else add("key_id IN (SELECT value FROM json_each(?))", upstreamKeys);
  }
  return { sql: parts.join(" AND "), params };
}

/** What an upstream filter over key rows needs from the configuration when the fold is split: its keys (null otherwise). */
async function upstreamKeysFor(dbs: FoldDatabases, f: StatsFilters, rows: Rows): Promise<string | null> {
  return dbs.length > 1 && f.upstreamId && rows !== "upstream" ? upstreamKeyIds(dbs[0], f.upstreamId) : null;
}

/** True when no dimension filter is set: the whole pool. */
const wholePool = (f: StatsFilters) => !f.keyId && !f.model && !f.clientKeyId && !f.upstreamId;

/**
 * Every metric per bucket of a size in [from, to] matching the filters, oldest first.
 * The whole pool's hourly series reads the pool-wide hour rollup (one row an hour).
 */
export async function seriesRows(
  dbs: FoldDatabases,
  bucket: StatsBucket,
  from: number,
  to: number,
  filters: StatsFilters,
): Promise<(MetricSums & { bucket: number })[]> {
  const rows = rowsOrThrow(filters);
  const pool = bucket === "hour" && wholePool(filters);
  const where = whereClause(from, to, filters, rows, await upstreamKeysFor(dbs, filters, rows));
  const parts = await onEach(dbs, async (db) => {
    const { results } = await db
      .prepare(`SELECT bucket, ${METRICS} FROM ${pool ? "rollup_pool_hour" : tableOf(rows, bucket)} WHERE ${where.sql} GROUP BY bucket ORDER BY bucket`)
      .bind(...where.params)
      .all<MetricSums & { bucket: number }>();
    return results;
  });
  if (parts.length === 1) return parts[0]!;
  return sumRows(parts.flat(), (r) => r.bucket).sort((a, b) => a.bucket - b.bucket);
}

/** The dimension a breakdown groups by, as a SQL expression over the rollup. */
const GROUP_BY = {
  model: "model",
  key: "key_id",
  client: "client_key_id",
  upstream: "upstream_id",
} as const;
export type BreakdownBy = keyof typeof GROUP_BY;

/** Where a breakdown row's id has a name: a key's masked form, a client key's or an upstream's name (in the configuration). */
const NAMED_IN: Partial<Record<BreakdownBy, { table: "keys" | "upstreams" | "client_keys"; column: string }>> = {
  key: { table: "keys", column: "masked" },
  client: { table: "client_keys", column: "name" },
  upstream: { table: "upstreams", column: "name" },
};

/** Busiest first; ties by id, so one database and several answer alike. */
const busiestFirst = (a: MetricSums & { id: string }, b: MetricSums & { id: string }) =>
  b.requests - a.requests || b.attempts - a.attempts || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);

/** Every metric per value of `by` over the buckets of a size in [from, to], busiest first (at most `limit` rows), with its name where it has one (null: deleted). */
export async function breakdownRows(
  dbs: FoldDatabases,
  bucket: StatsBucket,
  from: number,
  to: number,
  by: BreakdownBy,
  filters: StatsFilters,
  limit: number,
): Promise<(MetricSums & { id: string; name: string | null })[]> {
  const kind = rowsOrThrow(filters, by);
  const table = tableOf(kind, bucket);
  const where = whereClause(from, to, filters, kind, await upstreamKeysFor(dbs, filters, kind));
  // By key, the busiest keys are found first summing two columns, and every metric is summed for those keys only (through
  // the index by key): a pool's keys × models rows over the range are read once, narrowly, instead of with every column.
  // A key's rows are in one database, so each database's busiest keys hold the busiest of all.
  const rows =
    by === "key"
      ? `${where.sql} AND key_id IN (SELECT key_id FROM ${table} WHERE ${where.sql} GROUP BY key_id ORDER BY SUM(requests) DESC, SUM(attempts) DESC, key_id LIMIT ${limit})`
      : where.sql;
  // By upstream over key rows (one key's usage), rows are summed per key first and each key's upstream looked up once (a
  // deleted key's is ''); the upstream tables name it in every row.
  const joined = by === "upstream" && kind === "key";
  const named = NAMED_IN[by];
  if (dbs.length === 1) {
    const db = dbs[0];
    const source = joined
      ? `(SELECT COALESCE(k.upstream_id, '') AS upstream_id, p.* FROM (SELECT key_id, ${METRICS} FROM ${table} WHERE ${rows} GROUP BY key_id) p LEFT JOIN keys k ON k.id = p.key_id)`
      : `${table} WHERE ${rows}`;
    const grouped = `SELECT ${GROUP_BY[by]} AS id, ${joined ? METRICS_OF_METRICS : METRICS} FROM ${source} GROUP BY 1 ORDER BY requests DESC, attempts DESC, 1 LIMIT ${limit}`;
    const name = named ? `(SELECT ${named.column} FROM ${named.table} WHERE ${named.table}.id = g.id)` : "g.id";
    const { results } = await db
      .prepare(`SELECT g.*, ${name} AS name FROM (${grouped}) g ORDER BY g.requests DESC, g.attempts DESC, g.id`)
      .bind(...where.params)
      .all<MetricSums & { id: string; name: string | null }>();
    return results;
  }
  // Several databases: each one's groups (every group but by key, whose busiest are its own), added up; the upstream of a
  // key and every name come from the configuration, which the others do not hold.
  const parts = await onEach(dbs, async (db) => {
    const { results } = await db
      .prepare(`SELECT ${joined ? "key_id" : GROUP_BY[by]} AS id, ${METRICS} FROM ${table} WHERE ${rows} GROUP BY 1`)
      .bind(...where.params)
      .all<MetricSums & { id: string }>();
    return results;
  });
  let groups = sumRows(parts.flat(), (r) => r.id);
  if (joined) {
    const upstreamOf = await namesOf(
      dbs[0],
      "keys",
      "upstream_id",
      groups.map((g) => g.id),
    );
    groups = sumRows(
      groups.map((g) => ({ ...g, id: upstreamOf.get(g.id) ?? "" })),
      (r) => r.id,
    );
  }
  const top = groups.sort(busiestFirst).slice(0, limit);
  const names = named
    ? await namesOf(
        dbs[0],
        named.table,
        named.column,
        top.map((g) => g.id),
      )
    : null;
  return top.map((g) => ({ ...g, name: names ? (names.get(g.id) ?? null) : g.id }));
}

/** The pool's requests and tokens over [from, to) exactly: minute rollups for the ragged first hour, the pool's hour rollup after it. */
export async function rollingTotals(dbs: FoldDatabases, from: number, to: number): Promise<{ requests: number; tokens: number }> {
  const firstFullHour = Math.ceil(from / HOUR_MS) * HOUR_MS;
  const parts = await onEach(dbs, async (db) => {
    const [minutes, hours] = await db.batch<{ requests: number | null; tokens: number | null }>([
      db
        .prepare("SELECT SUM(requests) AS requests, SUM(total_tokens) AS tokens FROM rollup_upstream_minute WHERE bucket >= ?1 AND bucket < ?2")
        .bind(from, firstFullHour),
      db
        .prepare("SELECT SUM(requests) AS requests, SUM(total_tokens) AS tokens FROM rollup_pool_hour WHERE bucket >= ?1 AND bucket < ?2")
        .bind(firstFullHour, to),
    ]);
    const m = minutes!.results[0];
    const h = hours!.results[0];
    return { requests: (m?.requests ?? 0) + (h?.requests ?? 0), tokens: (m?.tokens ?? 0) + (h?.tokens ?? 0) };
  });
  return { requests: parts.reduce((n, p) => n + p.requests, 0), tokens: parts.reduce((n, p) => n + p.tokens, 0) };
}

// ---------------------------------------------------------------------------
// Sub-queries other tables' reads join

/** The success rate the snapshot and the key list show covers this much recent traffic. */
export const SUCCESS_RATE_WINDOW_MS = HOUR_MS;

/**
 * Per key, the successes and the attempts that say something about the key
 * (not the client's errors, not aborted) in minute buckets from `param` on:
 * a sub-query with columns key_id, successes, judged.
 */
export function recentSuccessSql(param: string): string {
  return `SELECT key_id, SUM(successes) AS successes, SUM(attempts - client_error - aborted) AS judged
    FROM rollup_minute WHERE bucket >= ${param} AND ${KEY_ROWS} GROUP BY key_id`;
}

/**
 * `recentSuccessSql` for the keys whose success rate is not 1 only: those with a
 * minute since `param` in which an attempt that says something about the key
 * did not succeed (found by the partial index of migration 0018). A key absent
 * had every judged attempt succeed, or none.
 */
export function recentMissesSql(param: string): string {
  return `SELECT key_id, SUM(successes) AS successes, SUM(attempts - client_error - aborted) AS judged
    FROM rollup_minute
    WHERE bucket >= ${param} AND ${KEY_ROWS} AND key_id IN (
      SELECT key_id FROM rollup_minute WHERE bucket >= ${param} AND ${KEY_ROWS} AND successes < attempts - client_error - aborted)
    GROUP BY key_id`;
}

/** Per value of `dimension` (key_id or client_key_id), requests and tokens on the day starting at `param`: a sub-query. */
export function usageOnDaySql(dimension: "key_id" | "client_key_id", param: string): string {
  const rows = dimension === "key_id" ? KEY_ROWS : CLIENT_ROWS;
  return `SELECT ${dimension}, SUM(requests) AS requests, SUM(total_tokens) AS tokens, SUM(cost_micros) AS cost FROM rollup_day WHERE bucket = ${param} AND ${rows} GROUP BY ${dimension}`;
}

/** Per client that `clients` (a sub-query of ids) selects, and minute bucket from `from` on: requests and tokens. */
export function selectClientMinutes(db: D1Database, clients: string, from: number): D1PreparedStatement {
  return db
    .prepare(
      `SELECT client_key_id, bucket, SUM(requests) AS requests, SUM(total_tokens) AS tokens FROM rollup_minute
       WHERE bucket >= ?1 AND ${CLIENT_ROWS} AND client_key_id IN (${clients}) GROUP BY client_key_id, bucket`,
    )
    .bind(from);
}

/**
 * Per client that `clients` (a sub-query of ids; its own parameters from ?4 on)
 * selects: its day from `today` (requests, tokens, spend) and its month from
 * `month` (tokens, spend), and the latest attempt those hold (`last_at`). The
 * month, and the day when today's bucket was folded wholly in the pool's time
 * zone, come from rollup_client_day. On the day the zone changed that bucket
 * holds only what was folded after the change (the rest of the day went to
 * the old zone's buckets), so the day is summed from the client's hour
 * buckets, and minute buckets up to the first hour (a zone off the hour) —
 * for that day only, as `poolDays` does for keys. Minute buckets older than
 * `minutesFrom` (retention's oldest) may be pruned: that first hour is then
 * counted whole, more than the day's, never less.
 */
export function selectClientDays(
  db: D1Database,
  clients: string,
  month: number,
  today: number,
  minutesFrom: number,
  ...params: unknown[]
): D1PreparedStatement {
  return selectClientDaysSince(db, null, clients, month, today, minutesFrom, ...params);
}

/**
 * `selectClientDays`, the time zone's change (`settings.time_zone_since`) given: one of several fold databases does
 * not hold the settings (null: read them in the same statement).
 */
export function selectClientDaysSince(
  db: D1Database,
  zoneSince: number | null,
  clients: string,
  month: number,
  today: number,
  minutesFrom: number,
  ...params: unknown[]
): D1PreparedStatement {
  const since = zoneSince === null ? "COALESCE((SELECT time_zone_since FROM settings WHERE id = 1), 0)" : String(Math.trunc(zoneSince));
  const settled = `(?2 >= ${since} + ${ZONE_SETTLED_MS})`;
  const fromHours = (table: "rollup_hour" | "rollup_minute", range: string) =>
    `SELECT client_key_id, requests, total_tokens, cost_micros, 0, 0, last_at FROM ${table}
         WHERE NOT ${settled} AND ${CLIENT_ROWS} AND ${range} AND client_key_id IN (${clients})`;
  return db
    .prepare(
      `SELECT client_key_id, SUM(dr) AS day_requests, SUM(dt) AS day_tokens, SUM(dc) AS day_cost,
         SUM(mt) AS month_tokens, SUM(mc) AS month_cost, MAX(last_at) AS last_at
       FROM (
         SELECT client_key_id, CASE WHEN bucket >= ?2 AND ${settled} THEN requests ELSE 0 END AS dr,
           CASE WHEN bucket >= ?2 AND ${settled} THEN total_tokens ELSE 0 END AS dt,
           CASE WHEN bucket >= ?2 AND ${settled} THEN cost_micros ELSE 0 END AS dc, total_tokens AS mt, cost_micros AS mc, last_at
         FROM rollup_client_day WHERE client_key_id IN (${clients}) AND bucket >= ?1
         UNION ALL ${fromHours("rollup_hour", "bucket >= ?3")}
         UNION ALL ${fromHours("rollup_minute", "bucket >= ?2 AND bucket < ?3")}
       ) GROUP BY client_key_id`,
    )
    .bind(month, today, today >= minutesFrom ? Math.ceil(today / HOUR_MS) * HOUR_MS : hourStart(today), ...params);
}

/** One client's day and month as `selectClientDays` reads them (null: nothing this month). */
export async function readClientDays(
  dbs: FoldDatabases,
  clientId: string,
  month: number,
  today: number,
  minutesFrom = -Infinity,
): Promise<Record<string, number> | null> {
  if (dbs.length === 1) return selectClientDays(dbs[0], "SELECT ?4", month, today, minutesFrom, clientId).first<Record<string, number>>();
  return (await clientDaysAcross(dbs, [clientId], month, today, minutesFrom)).get(clientId) ?? null;
}

/**
 * These client keys' days and months over several fold databases, each a `selectClientDays` row added up over
 * them (the latest attempt the latest of any), by client key; the time zone's change read from the first, which
 * holds the settings. A client key no database counted is absent.
 */
export async function clientDaysAcross(
  dbs: FoldDatabases,
  clientIds: readonly string[],
  month: number,
  today: number,
  minutesFrom = -Infinity,
): Promise<Map<string, Record<string, number>>> {
  const out = new Map<string, Record<string, number>>();
  if (clientIds.length === 0) return out;
  const zone = await dbs[0].prepare("SELECT time_zone_since FROM settings WHERE id = 1").first<{ time_zone_since: number }>();
  const since = Number(zone?.time_zone_since ?? 0);
  const ids = JSON.stringify(clientIds);
  const parts = await Promise.all(
    dbs.map(
      async (db) =>
        (await selectClientDaysSince(db, since, "SELECT value FROM json_each(?4)", month, today, minutesFrom, ids).all<Record<string, number>>()).results,
    ),
  );
  for (const row of parts.flat()) addClientDays(out, row);
  return out;
}

/** Adds one database's `selectClientDays` row to a client key's (by client key): its sums added, its latest attempt the latest. */
export function addClientDays(days: Map<string, Record<string, number>>, row: Record<string, number>): void {
  const id = String(row.client_key_id);
  const into = days.get(id);
  if (!into) {
    days.set(id, { ...row });
    return;
  }
  for (const [column, value] of Object.entries(row)) {
    if (column === "client_key_id") continue;
    into[column] = column === "last_at" ? Math.max(Number(into[column] ?? 0), Number(value ?? 0)) : Number(into[column] ?? 0) + Number(value ?? 0);
  }
}

/** Requests and tokens by key, for the keys in `keyIds` (a JSON array parameter). */
export interface KeyCounts {
  key_id: string;
  requests: number;
  tokens: number;
}

/** Per key of `keyIds` and minute bucket from `from` on: requests and tokens (for the pool's usage against per-minute limits). */
export function selectKeyMinutes(db: D1Database, keyIds: string, from: number): D1PreparedStatement {
  return db
    .prepare(
      `SELECT key_id, bucket, SUM(requests) AS requests, SUM(total_tokens) AS tokens FROM rollup_minute
       WHERE bucket >= ?2 AND ${KEY_ROWS} AND key_id IN (SELECT value FROM json_each(?1)) GROUP BY key_id, bucket`,
    )
    .bind(keyIds, from);
}

/** The most SELECTs D1 takes in one compound SELECT (its SQLite limit: a sixth fails "too many terms"). */
export const D1_COMPOUND_TERMS = 5;

/**
 * SELECTs of the same columns as one `UNION ALL`, nested so that no compound
 * holds more than D1 takes: five or fewer as they are, more as compounds of
 * `SELECT * FROM (…)` of five or fewer.
 */
export function unionAll(selects: readonly string[]): string {
  if (selects.length <= D1_COMPOUND_TERMS) return selects.join("\n       UNION ALL ");
  const groups: string[] = [];
  const size = Math.ceil(selects.length / D1_COMPOUND_TERMS);
  for (let i = 0; i < selects.length; i += size) groups.push(`SELECT * FROM (${unionAll(selects.slice(i, i + size))})`);
  return unionAll(groups);
}

/**
 * The key rows of `terms` (each bucket range of a rollup added or taken away)
 * for the keys `keys` names (an SQL expression `key_id IN` takes), as one
 * `UNION ALL` of signed `key_id, requests, tokens` rows (`unionAll`). Binds
 * the terms' bounds as parameters numbered after those already in `params`,
 * which it appends them to.
 */
export function keyWindowParts(terms: readonly CountTerm[], keys: string, params: unknown[]): string {
  return unionAll(
    terms.map((t) => {
      const sign = t.sign < 0 ? "-" : "";
      params.push(t.from);
      let range = `bucket = ?${params.length}`;
      if (t.rows !== "day") {
        params.push(Number.isFinite(t.to) ? t.to : Number.MAX_SAFE_INTEGER);
        range = `bucket >= ?${params.length - 1} AND bucket < ?${params.length}`;
      }
      return `SELECT key_id, ${sign}requests AS requests, ${sign}total_tokens AS tokens FROM rollup_${t.rows}
         WHERE ${range} AND ${KEY_ROWS} AND key_id IN ${keys}`;
    }),
  );
}

/**
 * Per key of `keyIds`: requests and tokens summed over `terms` — a key's day
 * so far, or part of it, as stats-consumer/logic/window-count.ts plans it. One
 * statement.
 */
export function selectKeyWindow(db: D1Database, keyIds: string, terms: readonly CountTerm[]): D1PreparedStatement {
  const params: unknown[] = [keyIds];
  const parts = keyWindowParts(terms, "(SELECT value FROM json_each(?1))", params);
  return db.prepare(`SELECT key_id, SUM(requests) AS requests, SUM(tokens) AS tokens FROM (${parts}) GROUP BY key_id`).bind(...params);
}
