import { createExecutionContext, createMessageBatch, getQueueResult } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { SCHEMA_MIGRATION, SNAPSHOT_KV_KEY, newEventId, type AdminEvent } from "../../schema";
import consumer from "../../stats-consumer/index";
import { attemptEvent } from "../fixtures/events";
import { admin, gateway } from "./helpers";

/**
 * The compatibility rule of an upgrade (docs/operations.md#upgrading): `npm run
 * deploy` applies a migration before it deploys the code written for it, so for a
 * while this code runs against a database one migration ahead. A migration that
 * only adds (columns with defaults, tables, indexes) leaves it working as before;
 * one that replaces a table it writes makes its batches fail, and the queue's
 * redelivery to the new consumer counts them once, losing nothing.
 */

const FUTURE = "9999_future.sql";

async function deliver(bodies: unknown[], ids: string[]) {
  const batch = createMessageBatch(
    "keypool-events",
    bodies.map((body, i) => ({ id: ids[i]!, timestamp: new Date(), attempts: 1, body })),
  );
  const ctx = createExecutionContext();
  let threw = false;
  try {
    await consumer.queue(batch, env, ctx);
  } catch {
    threw = true;
  }
  return { threw, result: await getQueueResult(batch, ctx) };
}

async function counted(clientKeyId: string) {
  const row = await env.DB.prepare("SELECT SUM(requests) AS requests, SUM(total_tokens) AS tokens FROM rollup_minute WHERE client_key_id = ?1")
    .bind(clientKeyId)
    .first<{ requests: number | null; tokens: number | null }>();
  return { requests: row?.requests ?? 0, tokens: row?.tokens ?? 0 };
}

const attempts = (client: string, n: number) =>
  Array.from({ length: n }, () => attemptEvent({ clientKeyId: client, keyId: "k-upgrade", upstreamId: "u-upgrade", model: "m-upgrade", totalTokens: 10 }));

describe("a database one migration ahead of the code", () => {
  it("keeps working after a migration that only adds: columns with defaults, a table, an index", { timeout: 60_000 }, async () => {
    const additive = [
      "ALTER TABLE rollup_minute ADD COLUMN future_tokens INTEGER NOT NULL DEFAULT 0",
      "ALTER TABLE keys ADD COLUMN future_label TEXT NOT NULL DEFAULT ''",
      "ALTER TABLE key_health ADD COLUMN future_score REAL",
      "CREATE TABLE future_things (id TEXT PRIMARY KEY, value TEXT)",
      "CREATE INDEX future_keys_label ON keys (future_label)",
      `INSERT INTO d1_migrations (name) VALUES ('${FUTURE}')`,
    ];
    await env.DB.batch(additive.map((sql) => env.DB.prepare(sql)));
    try {
      // The consumer folds usage as before.
      const client = crypto.randomUUID();
      const delivered = await deliver(
        attempts(client, 3),
        [1, 2, 3].map((i) => `up-${i}-${client}`),
      );
      expect(delivered.threw).toBe(false);
      expect(delivered.result.ackAll).toBe(true);
      expect(await counted(client)).toEqual({ requests: 3, tokens: 30 });

      // The admin API writes keys, and the consumer publishes the snapshot with them.
      const upstream = await admin<{ id: string }>("POST", "/upstreams", { name: "ahead", baseUrl: "https://ahead.test/v1", models: ["m-ahead"] });
      const added = await admin<{ added: number }>("POST", "/keys", { upstreamId: upstream.body.id, text: "sk-ahead-0000000000000001" });
      expect(added.body.added).toBe(1);
      const before = JSON.parse((await env.SNAPSHOT.get(SNAPSHOT_KV_KEY)) ?? '{"version":0}') as { version: number };
      const event: AdminEvent = {
        v: 1,
        type: "admin",
        id: newEventId(Date.now()),
        ts: Date.now(),
        actor: "admin",
        action: "keys.add",
        target: upstream.body.id,
        detail: null,
      };
      expect((await deliver([event], [`adm-${client}`])).threw).toBe(false);
      const after = JSON.parse((await env.SNAPSHOT.get(SNAPSHOT_KV_KEY))!) as { version: number; upstreams: { id: string }[] };
      expect(after.version).toBeGreaterThan(before.version);
      expect(after.upstreams.map((u) => u.id)).toContain(upstream.body.id);

      // The gateway's deep health accepts a newer schema than its own.
      const health = (await (await gateway("/healthz?deep=1")).json()) as { ok: boolean; database: { migration: string; expected: string } };
      expect(health).toMatchObject({ ok: true, database: { migration: FUTURE, expected: SCHEMA_MIGRATION } });
    } finally {
      await env.DB.batch(
        [
          "DROP INDEX future_keys_label",
          "DROP TABLE future_things",
          "ALTER TABLE key_health DROP COLUMN future_score",
          "ALTER TABLE keys DROP COLUMN future_label",
          "ALTER TABLE rollup_minute DROP COLUMN future_tokens",
          `DELETE FROM d1_migrations WHERE name = '${FUTURE}'`,
        ].map((sql) => env.DB.prepare(sql)),
      );
    }
  });

  it("fails its batches after a migration that replaces a table it writes, and the redelivery counts them once", { timeout: 60_000 }, async () => {
    const client = crypto.randomUUID();
    const events = attempts(client, 4);
    const ids = events.map((_, i) => `replaced-${i}-${client}`);
    // The new schema keeps per-minute rollups somewhere this consumer does not know.
    await env.DB.prepare("ALTER TABLE rollup_minute RENAME TO rollup_minute_next").run();
    let failed: Awaited<ReturnType<typeof deliver>>;
    try {
      failed = await deliver(events, ids);
    } finally {
      // The new consumer, written for the new schema (here: the table back where this code looks).
      await env.DB.prepare("ALTER TABLE rollup_minute_next RENAME TO rollup_minute").run();
    }
    // Nothing acknowledged: the queue delivers the batch again.
    expect(failed.threw || failed.result.retryBatch.retry).toBe(true);
    expect(failed.result.ackAll).toBe(false);
    expect(failed.result.explicitAcks).toEqual([]);
    expect(await counted(client)).toEqual({ requests: 0, tokens: 0 });

    // The redelivery is folded once, and a second one changes nothing.
    const redelivered = await deliver(events, ids);
    expect(redelivered.result.ackAll).toBe(true);
    expect(await counted(client)).toEqual({ requests: 4, tokens: 40 });
    await deliver(events, ids);
    expect(await counted(client)).toEqual({ requests: 4, tokens: 40 });
  });
});
