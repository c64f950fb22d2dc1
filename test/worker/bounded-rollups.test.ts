import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { breakdownRows, recentMissesSql } from "../../storage/rollups";

/**
 * The keyed rollups hold a key's rows (summed over client keys) and a client
 * key's rows (summed over keys), never key × client key (migration 0020).
 */

const MIGRATION = "0020_bounded_rollups.sql";
const MEASURES = "requests, attempts, successes, total_tokens, cost_micros, latency_ms_max, last_at";

/** Totals of `rows` (a condition) in rollup_hour at `bucket`, grouped by `by`. */
async function totalsBy(bucket: number, by: string, rows: string) {
  const { results } = await env.DB.prepare(
    `SELECT ${by} AS id, SUM(requests) AS requests, SUM(attempts) AS attempts, SUM(successes) AS successes, SUM(total_tokens) AS tokens,
       SUM(cost_micros) AS cost, MAX(latency_ms_max) AS latencyMax, MAX(last_at) AS lastAt
     FROM rollup_hour WHERE bucket = ?1 AND ${rows} GROUP BY ${by} ORDER BY ${by}`,
  )
    .bind(bucket)
    .all();
  return results;
}

describe("bounded rollups", () => {
  it("migration 0020 turns key × model × client rows into key rows and client rows with the same totals", async () => {
    // The tables as they were before it: today's, without the check on the kind of row (and empty: this file's database is its own).
    const TABLES = ["rollup_minute", "rollup_hour", "rollup_day"];
    const { results: ddl } = await env.DB.prepare(`SELECT name, sql FROM sqlite_master WHERE type = 'table' AND name IN ('${TABLES.join("', '")}')`).all<{
      name: string;
      sql: string;
    }>();
    expect(ddl).toHaveLength(3);
    await env.DB.batch(
      ddl.flatMap(({ name, sql }) => {
        const unchecked = sql.replace(/,\s*(--[^\n]*\n\s*)?CHECK \(\(key_id = '\*'\) <> \(client_key_id = '\*'\)\)/, "");
        expect(unchecked).not.toContain("CHECK");
        return [`DROP TABLE ${name}`, unchecked].map((q) => env.DB.prepare(q));
      }),
    );
    const bucket = 3_600_000 * 1_000;
    // 3 keys × 2 models × 2 client keys, each row different.
    const old: unknown[][] = [];
    let n = 0;
    for (const key of ["k-a", "k-b", "k-c"])
      for (const model of ["m-1", "m-2"])
        for (const client of ["c-x", "c-y"]) {
          n++;
          old.push([bucket, key, model, client, n, n + 1, n - 1, n * 100, n * 7, n * 10, 1_000 + n]);
        }
    await env.DB.batch(
      old.map((row) =>
        env.DB.prepare(
          `INSERT INTO rollup_hour (bucket, key_id, model, client_key_id, ${MEASURES}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)`,
        ).bind(...row),
      ),
    );
    const everyRow = "1 = 1";
    const before = {
      key: await totalsBy(bucket, "key_id", everyRow),
      client: await totalsBy(bucket, "client_key_id", everyRow),
      model: await totalsBy(bucket, "model", everyRow),
    };

    const migration = env.TEST_MIGRATIONS.find((m) => m.name === MIGRATION);
    expect(migration).toBeDefined();
    await env.DB.batch(migration!.queries.map((q) => env.DB.prepare(q)));

    const { results: shapes } = await env.DB.prepare(
      `SELECT CASE WHEN client_key_id = '*' THEN 'key' WHEN key_id = '*' THEN 'client' ELSE 'both' END AS kind, COUNT(*) AS n
       FROM rollup_hour WHERE bucket = ?1 GROUP BY 1 ORDER BY 1`,
    )
      .bind(bucket)
      .all();
    // Key rows: 3 keys × 2 models; client rows: 2 clients × 2 models; none of the 12 rows left.
    expect(shapes).toEqual([
      { kind: "client", n: 4 },
      { kind: "key", n: 6 },
    ]);
    expect(await totalsBy(bucket, "key_id", "client_key_id = '*'")).toEqual(before.key);
    expect(await totalsBy(bucket, "client_key_id", "key_id = '*'")).toEqual(before.client);
    expect(await totalsBy(bucket, "model", "client_key_id = '*'")).toEqual(before.model);
    expect(await totalsBy(bucket, "model", "key_id = '*'")).toEqual(before.model);
  });

  it("refuses a row that is both a key's and a client key's, or neither (what the consumer before 0020 wrote)", async () => {
    for (const [key, client] of [
      ["k-1", "c-1"],
      ["*", "*"],
    ])
      await expect(
        env.DB.prepare("INSERT INTO rollup_minute (bucket, key_id, model, client_key_id) VALUES (0, ?1, 'm', ?2)").bind(key, client).run(),
      ).rejects.toThrow(/CHECK constraint failed/);
    await env.DB.prepare("INSERT INTO rollup_minute (bucket, key_id, model, client_key_id) VALUES (0, 'k-1', 'm', '*'), (0, '*', 'm', 'c-1')").run();
  });

  it("breaks usage down by key: the busiest keys, every metric summed over their models and the range", async () => {
    const hour = 3_600_000;
    const from = hour * 2_000;
    const rows: [number, string, string, number, number, number][] = [
      // bucket, key, model, requests, attempts, tokens
      [from, "bk-1", "m-1", 5, 6, 50],
      [from + hour, "bk-1", "m-2", 5, 5, 70],
      [from, "bk-2", "m-1", 20, 20, 10],
      [from + hour, "bk-3", "m-1", 3, 9, 30],
      [from + hour, "bk-3", "m-2", 7, 7, 40],
      [from + 5 * hour, "bk-4", "m-1", 99, 99, 99], // outside the range
    ];
    await env.DB.batch(
      rows.map(([bucket, key, model, requests, attempts, tokens]) =>
        env.DB.prepare(
          "INSERT INTO rollup_hour (bucket, key_id, model, client_key_id, requests, attempts, total_tokens, latency_ms_max) VALUES (?1, ?2, ?3, '*', ?4, ?5, ?6, ?5)",
        ).bind(bucket, key, model, requests, attempts, tokens),
      ),
    );
    // And a client key's row of the same attempts, which a breakdown by key must not count.
    await env.DB.prepare("INSERT INTO rollup_hour (bucket, key_id, model, client_key_id, requests, attempts) VALUES (?1, '*', 'm-1', 'c-1', 1000, 1000)")
      .bind(from)
      .run();
    const top = await breakdownRows([env.DB], "hour", from, from + 2 * hour, "key", {}, 2);
    // bk-2 has the most requests; bk-1 and bk-3 tie on 10, and bk-3's 16 attempts put it first.
    expect(top.map(({ id, requests, attempts, tokens, latencyMax }) => ({ id, requests, attempts, tokens, latencyMax }))).toEqual([
      { id: "bk-2", requests: 20, attempts: 20, tokens: 10, latencyMax: 20 },
      { id: "bk-3", requests: 10, attempts: 16, tokens: 70, latencyMax: 9 },
    ]);
  });

  it("finds the keys with misses through the partial index of key rows", async () => {
    const { results } = await env.DB.prepare(`EXPLAIN QUERY PLAN ${recentMissesSql("?1")}`)
      .bind(0)
      .all<{ detail: string }>();
    expect(results.map((r) => r.detail).join("\n")).toContain("rollup_minute_misses");
  });
});
