import { bucketsWithinSql, type RollupTable } from "../../storage/rollups";
import { PROJECTION_TABLES } from "./ingest-db";

/**
 * Recreates empty `shadow_` copies of the projection tables from the live tables'
 * own DDL, so a rebuild writes into exactly the same schema (later migrations
 * included) without touching the live rows.
 */
export async function resetShadowTables(db: D1Database): Promise<void> {
  const { results } = await db
    .prepare(`SELECT name, sql FROM sqlite_master WHERE type = 'table' AND name IN (SELECT value FROM json_each(?1))`)
    .bind(JSON.stringify(PROJECTION_TABLES))
    .all<{ name: string; sql: string }>();
  const statements: D1PreparedStatement[] = [];
  for (const { name, sql } of results) {
    statements.push(db.prepare(`DROP TABLE IF EXISTS shadow_${name}`));
    statements.push(db.prepare(sql.replace(/^CREATE TABLE\s+"?(\w+)"?/i, `CREATE TABLE shadow_${name}`)));
  }
  await db.batch(statements);
}

/** How one projection compares with its rebuilt shadow. */
export interface TableDiff {
  live: number;
  rebuilt: number;
  /** Rows present (with these exact values) only in the live table, and only in the shadow. */
  onlyLive: number;
  onlyRebuilt: number;
  samples: { onlyLive: Record<string, unknown>[]; onlyRebuilt: Record<string, unknown>[] };
}

/**
 * Compares a live projection with its shadow, row by row and value by value, over
 * the rows `where` selects (a SQL condition on both tables' columns; `?1`, `?2` bind `params`).
 */
async function diffRows(db: D1Database, table: string, where: string, params: unknown[]): Promise<TableDiff> {
  const live = `SELECT * FROM ${table} WHERE ${where}`;
  const shadow = `SELECT * FROM shadow_${table} WHERE ${where}`;
  const count = (sql: string) => db.prepare(`SELECT COUNT(*) AS n FROM (${sql})`).bind(...params);
  const sample = (sql: string) => db.prepare(`${sql} LIMIT 5`).bind(...params);
  const [liveN, shadowN, onlyLiveN, onlyShadowN, onlyLive, onlyShadow] = await db.batch<Record<string, unknown>>([
    count(live),
    count(shadow),
    count(`${live} EXCEPT ${shadow}`),
    count(`${shadow} EXCEPT ${live}`),
    sample(`${live} EXCEPT ${shadow}`),
    sample(`${shadow} EXCEPT ${live}`),
  ]);
  const n = (r: D1Result<Record<string, unknown>> | undefined) => Number(r?.results[0]?.n ?? 0);
  return {
    live: n(liveN),
    rebuilt: n(shadowN),
    onlyLive: n(onlyLiveN),
    onlyRebuilt: n(onlyShadowN),
    samples: { onlyLive: onlyLive?.results ?? [], onlyRebuilt: onlyShadow?.results ?? [] },
  };
}

/** Compares a projection with its shadow over every row. */
export function diffTable(db: D1Database, table: "key_health" | "key_capacity" | "audit_log" | "metric_total"): Promise<TableDiff> {
  return diffRows(db, table, "1 = 1", []);
}

/** Compares a rollup table with its shadow over its buckets wholly inside [from, to). */
export function diffRollup(db: D1Database, table: RollupTable, from: number, to: number): Promise<TableDiff> {
  return diffRows(db, table, bucketsWithinSql(table), [from, to]);
}

/** Compares the request log with its shadow over what retention still keeps live: requests started, and attempts sent, from `cutoff` on. */
export async function diffRequestLog(db: D1Database, cutoff: number): Promise<{ request_log: TableDiff; request_attempts: TableDiff }> {
  return {
    request_log: await diffRows(db, "request_log", "started_at >= ?1", [cutoff]),
    request_attempts: await diffRows(db, "request_attempts", "ts >= ?1", [cutoff]),
  };
}

/** The diffs of one table over several of the fold's databases, as one: counts added, the first samples kept. */
export function sumDiffs(diffs: readonly TableDiff[]): TableDiff {
  const sum = (f: "live" | "rebuilt" | "onlyLive" | "onlyRebuilt") => diffs.reduce((n, d) => n + d[f], 0);
  return {
    live: sum("live"),
    rebuilt: sum("rebuilt"),
    onlyLive: sum("onlyLive"),
    onlyRebuilt: sum("onlyRebuilt"),
    samples: {
      onlyLive: diffs.flatMap((d) => d.samples.onlyLive).slice(0, 5),
      onlyRebuilt: diffs.flatMap((d) => d.samples.onlyRebuilt).slice(0, 5),
    },
  };
}
