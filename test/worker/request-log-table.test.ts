import { createExecutionContext, createMessageBatch, getQueueResult } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import consumer from "../../stats-consumer/index";
import { attemptEvent } from "../fixtures/events";

/**
 * The request log's table without rowids (migration 0026): the rows it held
 * survive the migration, a request's row is still recomputed from its
 * attempts, and a row costs D1 five rows written (its tree and its four
 * indexes) where it cost six.
 */

const MIGRATION = "0026_request_log_by_id.sql";

async function deliver(bodies: unknown[]) {
  const batch = createMessageBatch(
    "keypool-events",
    bodies.map((body) => ({ id: crypto.randomUUID(), timestamp: new Date(), attempts: 1, body })),
  );
  const ctx = createExecutionContext();
  await consumer.queue(batch, env, ctx);
  return getQueueResult(batch, ctx);
}

const row = (requestId: string) => env.DB.prepare("SELECT * FROM request_log WHERE request_id = ?1").bind(requestId).first();

/** What D1 counts written for one new request's row. */
async function rowsWrittenForOneRow(): Promise<number> {
  const id = crypto.randomUUID();
  const result = await env.DB.prepare(
    `INSERT INTO request_log (request_id, started_at, client_key_id, model, endpoint, stream, key_id, upstream_id, status, outcome, attempts,
       latency_ms, prompt_tokens, completion_tokens, total_tokens, cached_tokens, reasoning_tokens, usage_source, cost_micros, unpriced)
     VALUES (?1, 1, 'c', 'm', '/chat/completions', 0, 'k', 'u', 200, 'ok', 1, 10, 1, 1, 2, 0, 0, 'upstream', 0, 0)`,
  )
    .bind(id)
    .run();
  await env.DB.prepare("DELETE FROM request_log WHERE request_id = ?1").bind(id).run();
  return result.meta.rows_written;
}

describe("the request log's table", () => {
  it("keeps through migration 0026 the requests it held, writes five rows a request where it wrote six, and still recomputes a request from its attempts", async () => {
    // The table as it was before the migration: a rowid table with a text primary key (this file's database is its own).
    const { results } = await env.DB.prepare("SELECT sql FROM sqlite_master WHERE tbl_name = 'request_log' AND sql IS NOT NULL").all<{ sql: string }>();
    const table = results.find((r) => r.sql.startsWith("CREATE TABLE"))!.sql;
    expect(table).toMatch(/WITHOUT ROWID\s*$/);
    const indexes = results.filter((r) => r.sql.startsWith("CREATE INDEX")).map((r) => r.sql);
    expect(indexes).toHaveLength(4);
    await env.DB.batch(
      ["DROP TABLE request_log", table.replace(/\s*WITHOUT ROWID\s*$/, "").replace("TEXT NOT NULL PRIMARY KEY", "TEXT PRIMARY KEY"), ...indexes].map((q) =>
        env.DB.prepare(q),
      ),
    );
    expect(await rowsWrittenForOneRow()).toBe(6);

    const client = crypto.randomUUID();
    const requestId = crypto.randomUUID();
    const first = attemptEvent({ clientKeyId: client, requestId, attempt: 1, final: false, outcome: "rate_limited", status: 429, ts: Date.now() - 2_000 });
    expect((await deliver([{ events: [first, attemptEvent({ clientKeyId: client })] }])).ackAll).toBe(true);
    const plain = await env.DB.prepare("SELECT * FROM request_log WHERE client_key_id = ?1").bind(client).all();
    expect(plain.results).toHaveLength(1);

    const migration = env.TEST_MIGRATIONS.find((m) => m.name === MIGRATION);
    expect(migration).toBeDefined();
    await env.DB.batch(migration!.queries.map((q) => env.DB.prepare(q)));

    expect(await env.DB.prepare("SELECT * FROM request_log WHERE client_key_id = ?1").bind(client).all()).toEqual(
      expect.objectContaining({ results: plain.results }),
    );
    expect(await rowsWrittenForOneRow()).toBe(5);
    // The retried request's final attempt arrives after the migration: its row is made from both attempts.
    expect(await row(requestId)).toBeNull();
    await deliver([{ events: [attemptEvent({ clientKeyId: client, requestId, attempt: 2, final: true })] }]);
    expect(await row(requestId)).toMatchObject({ attempts: 2, outcome: "ok", started_at: first.ts });
  });
});
