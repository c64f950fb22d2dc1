import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { breakdownRows, bucketTotals, seriesRows } from "../../storage/rollups";

/**
 * The upstream tables (migration 0021) hold usage per upstream × model and
 * answer every stats read that names neither a key nor a client key.
 */

const MIGRATION = "0021_upstream_rollups.sql";
const MINUTE = 60_000 * 5_000_000;

/** Two upstreams, three keys of them, and key rows of one minute (one of a key deleted since), and a client key's row the reads must not count. */
async function seed() {
  await env.DB.batch([
    env.DB.prepare(
      "INSERT INTO upstreams (id, name, base_url, created_at, updated_at) VALUES ('bu-1', 'one', 'https://one.test/v1', 0, 0), ('bu-2', 'two', 'https://two.test/v1', 0, 0)",
    ),
    env.DB.prepare(
      "INSERT INTO keys (id, upstream_id, secret_enc, fingerprint, masked, created_at, updated_at) VALUES ('bu-k1', 'bu-1', 'v1.a.b', 'f1', 'sk-…1', 0, 0), ('bu-k2', 'bu-1', 'v1.a.b', 'f2', 'sk-…2', 0, 0), ('bu-k3', 'bu-2', 'v1.a.b', 'f3', 'sk-…3', 0, 0)",
    ),
    ...(
      [
        ["bu-k1", "m-1", 4, 100],
        ["bu-k1", "m-2", 1, 300],
        ["bu-k2", "m-1", 2, 200],
        ["bu-k3", "m-1", 5, 50],
        ["bu-gone", "m-1", 3, 900],
      ] as const
    ).map(([key, model, requests, latencyMax]) =>
      env.DB.prepare(
        "INSERT INTO rollup_minute (bucket, key_id, model, client_key_id, requests, attempts, total_tokens, latency_ms_max) VALUES (?1, ?2, ?3, '*', ?4, ?4, ?4 * 10, ?5)",
      ).bind(MINUTE, key, model, requests, latencyMax),
    ),
    env.DB.prepare("INSERT INTO rollup_minute (bucket, key_id, model, client_key_id, requests, attempts) VALUES (?1, '*', 'm-1', 'c-1', 1000, 1000)").bind(
      MINUTE,
    ),
  ]);
}

const pick = (rows: Awaited<ReturnType<typeof breakdownRows>>) => rows.map(({ id, name, requests, latencyMax }) => ({ id, name, requests, latencyMax }));

describe("upstream rollups", () => {
  it("migration 0021 sums key rows per upstream and model through each key's upstream, a deleted key's under ''; the reads use them", async () => {
    await seed();
    // The tables as before the migration: none (this file's database is its own).
    await env.DB.batch(["minute", "hour", "day"].map((grain) => env.DB.prepare(`DROP TABLE rollup_upstream_${grain}`)));
    const migration = env.TEST_MIGRATIONS.find((m) => m.name === MIGRATION);
    expect(migration).toBeDefined();
    await env.DB.batch(migration!.queries.map((q) => env.DB.prepare(q)));

    const { results } = await env.DB.prepare(
      "SELECT upstream_id, model, requests, attempts, total_tokens, latency_ms_max FROM rollup_upstream_minute WHERE bucket = ?1 ORDER BY upstream_id, model",
    )
      .bind(MINUTE)
      .all();
    expect(results).toEqual([
      { upstream_id: "", model: "m-1", requests: 3, attempts: 3, total_tokens: 30, latency_ms_max: 900 },
      { upstream_id: "bu-1", model: "m-1", requests: 6, attempts: 6, total_tokens: 60, latency_ms_max: 200 },
      { upstream_id: "bu-1", model: "m-2", requests: 1, attempts: 1, total_tokens: 10, latency_ms_max: 300 },
      { upstream_id: "bu-2", model: "m-1", requests: 5, attempts: 5, total_tokens: 50, latency_ms_max: 50 },
    ]);

    // By upstream, from the upstream rows; with a model; and one key's (its key rows, its upstream looked up).
    expect(pick(await breakdownRows([env.DB], "minute", MINUTE, MINUTE, "upstream", {}, 10))).toEqual([
      { id: "bu-1", name: "one", requests: 7, latencyMax: 300 },
      { id: "bu-2", name: "two", requests: 5, latencyMax: 50 },
      { id: "", name: null, requests: 3, latencyMax: 900 },
    ]);
    expect(pick(await breakdownRows([env.DB], "minute", MINUTE, MINUTE, "upstream", { model: "m-2" }, 10))).toEqual([
      { id: "bu-1", name: "one", requests: 1, latencyMax: 300 },
    ]);
    expect(pick(await breakdownRows([env.DB], "minute", MINUTE, MINUTE, "upstream", { keyId: "bu-k1" }, 10))).toEqual([
      { id: "bu-1", name: "one", requests: 5, latencyMax: 300 },
    ]);
    // By model, for the pool and for an upstream; the pool's series and totals: none counts the client key's row.
    expect(pick(await breakdownRows([env.DB], "minute", MINUTE, MINUTE, "model", {}, 10))).toEqual([
      { id: "m-1", name: "m-1", requests: 14, latencyMax: 900 },
      { id: "m-2", name: "m-2", requests: 1, latencyMax: 300 },
    ]);
    expect(pick(await breakdownRows([env.DB], "minute", MINUTE, MINUTE, "model", { upstreamId: "bu-1" }, 10))).toEqual([
      { id: "m-1", name: "m-1", requests: 6, latencyMax: 200 },
      { id: "m-2", name: "m-2", requests: 1, latencyMax: 300 },
    ]);
    const series = await seriesRows([env.DB], "minute", MINUTE, MINUTE, { upstreamId: "bu-2" });
    expect(series.map(({ bucket, requests, tokens }) => ({ bucket, requests, tokens }))).toEqual([{ bucket: MINUTE, requests: 5, tokens: 50 }]);
    expect(await bucketTotals([env.DB], "minute", MINUTE, MINUTE)).toEqual([{ bucket: MINUTE, requests: 15, tokens: 150 }]);
  });

  it("the pool's reads go to the upstream tables, not the keys' rows", async () => {
    // What the reads send, caught from a recording database.
    const sent: string[] = [];
    const recording = new Proxy(env.DB, {
      get(target, prop, receiver) {
        if (prop === "prepare")
          return (sql: string) => {
            sent.push(sql);
            return target.prepare(sql);
          };
        const value = Reflect.get(target, prop, receiver) as unknown;
        return typeof value === "function" ? value.bind(target) : value;
      },
    });
    await seriesRows([recording], "minute", 0, 1, {});
    await breakdownRows([recording], "minute", 0, 1, "model", {}, 10);
    await breakdownRows([recording], "day", 0, 1, "upstream", { model: "m-1" }, 10);
    expect(sent).toHaveLength(3);
    for (const sql of sent) {
      expect(sql).toMatch(/FROM rollup_upstream_(minute|day)\b/);
      expect(sql).not.toMatch(/FROM rollup_(minute|day)\b/);
    }
  });
});
