import type { BucketTotals } from "../logic/stats";

export type RollupTable = "rollup_minute" | "rollup_hour" | "rollup_day";

/** Totals per bucket of `table` for buckets in [from, to], oldest first. */
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
