import { createExecutionContext, createMessageBatch, getQueueResult } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import consumer from "../../stats-consumer/index";
import { pruneSeenEvents } from "../../storage/dedupe-window";
import { attemptEvent } from "../fixtures/events";

/**
 * The dedupe window keyed by time, then id (migration 0025): what the window
 * held under its old key survives the migration, a redelivery is still found,
 * and retention cuts a range of the key itself.
 */

const MIGRATION = "0025_dedupe_by_time.sql";

async function deliver(bodies: unknown[]) {
  const batch = createMessageBatch(
    "keypool-events",
    bodies.map((body) => ({ id: crypto.randomUUID(), timestamp: new Date(), attempts: 1, body })),
  );
  const ctx = createExecutionContext();
  await consumer.queue(batch, env, ctx);
  return getQueueResult(batch, ctx);
}

async function requests(client: string): Promise<number> {
  const row = await env.DB.prepare("SELECT SUM(requests) AS n FROM rollup_minute WHERE client_key_id = ?1").bind(client).first<{ n: number | null }>();
  return row?.n ?? 0;
}

describe("the dedupe window", () => {
  it("keeps through migration 0025 the ids it held, and still counts a redelivered event once", async () => {
    // The window as it was before the migration: keyed by id, with an index by time (and empty: this file's database is its own).
    await env.DB.batch(
      [
        "DROP TABLE seen_events",
        "CREATE TABLE seen_events (id TEXT PRIMARY KEY, ts INTEGER NOT NULL) WITHOUT ROWID",
        "CREATE INDEX seen_events_ts ON seen_events(ts)",
      ].map((q) => env.DB.prepare(q)),
    );
    const client = crypto.randomUUID();
    const folded = attemptEvent({ clientKeyId: client });
    expect((await deliver([{ events: [folded] }])).ackAll).toBe(true);
    expect(await requests(client)).toBe(1);

    const migration = env.TEST_MIGRATIONS.find((m) => m.name === MIGRATION);
    expect(migration).toBeDefined();
    await env.DB.batch(migration!.queries.map((q) => env.DB.prepare(q)));

    expect(await env.DB.prepare("SELECT ts, id FROM seen_events").all()).toMatchObject({ results: [{ ts: folded.ts, id: folded.id }] });
    const indexes = await env.DB.prepare("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'seen_events' AND sql IS NOT NULL").all();
    expect(indexes.results).toEqual([]);

    // The event folded before the migration, redelivered with a new one: only the new one counts.
    const result = await deliver([{ events: [folded, attemptEvent({ clientKeyId: client })] }]);
    expect(result.ackAll).toBe(true);
    expect(await requests(client)).toBe(2);
    // And the new one redelivered alone (the window's new key) counts nothing more.
    const again = attemptEvent({ clientKeyId: client });
    await deliver([{ events: [again] }]);
    await deliver([{ events: [again] }]);
    expect(await requests(client)).toBe(3);
  });

  it("is pruned by a range of its key, with no index of its own", async () => {
    const now = Date.now();
    const rows = [
      [now - 10 * 3_600_000, `old-${crypto.randomUUID()}`],
      [now - 1_000, `new-${crypto.randomUUID()}`],
    ];
    await env.DB.batch(rows.map(([ts, id]) => env.DB.prepare("INSERT INTO seen_events (ts, id) VALUES (?1, ?2)").bind(ts, id)));
    const plan = await env.DB.prepare("EXPLAIN QUERY PLAN DELETE FROM seen_events WHERE ts < ?1")
      .bind(now - 3_600_000)
      .all<{ detail: string }>();
    expect(plan.results.map((r) => r.detail).join("; ")).toMatch(/SEARCH seen_events USING PRIMARY KEY \(ts<\?\)/);
    await pruneSeenEvents(env.DB, now - 3_600_000).run();
    const left = await env.DB.prepare("SELECT id FROM seen_events WHERE id IN (?1, ?2)").bind(rows[0]![1], rows[1]![1]).all<{ id: string }>();
    expect(left.results.map((r) => r.id)).toEqual([rows[1]![1]]);
  });
});
