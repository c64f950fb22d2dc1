import { createExecutionContext, createMessageBatch, getQueueResult } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import consumer from "../../stats-consumer/index";
import { PriceBook, type AttemptEvent } from "../../schema";
import { findRequest } from "../../storage/request-log";
import { ATTEMPT_COLUMNS, logAttempt, requestOfAttempts } from "../../storage/request-log-rows";
import { attemptEvent } from "../fixtures/events";

/**
 * The request log as one row a request (migration 0027): what the two tables
 * held before it reads the same after it, an attempt folded after it joins a
 * request begun before it, and a redelivery changes nothing.
 */

const MIGRATION = "0027_request_log_one_row.sql";
const book = new PriceBook([]);
const tuple = (e: AttemptEvent) => logAttempt(e, ...book.attemptCost(e));

async function deliver(events: AttemptEvent[]) {
  const batch = createMessageBatch(
    "keypool-events",
    events.map((body) => ({ id: crypto.randomUUID(), timestamp: new Date(), attempts: 1, body })),
  );
  const ctx = createExecutionContext();
  await consumer.queue(batch, env, ctx);
  return getQueueResult(batch, ctx);
}

/** What the log answers for a request, without the names the read joins. */
async function read(requestId: string) {
  const found = await findRequest([env.DB], requestId);
  if (!found) return null;
  const plain = (row: Record<string, unknown>, columns: readonly string[]) => Object.fromEntries(columns.map((c) => [c, row[c]]));
  return { request: found.request, attempts: found.attempts.map((a) => plain(a, ATTEMPT_COLUMNS)) };
}

/** A request's row and attempts as made from all its attempts at once. */
function whole(events: AttemptEvent[]) {
  return requestOfAttempts(events.map(tuple))!;
}

describe("the request log's migration to one row a request", () => {
  it("reads before and after it alike, then folds an attempt into a request begun before it, and a redelivery changes nothing", async () => {
    // The two tables as migrations 0015 and 0016 made them (this file's database is its own).
    const old = env.TEST_MIGRATIONS.filter((m) => m.name.startsWith("0015_") || m.name.startsWith("0016_"))
      .flatMap((m) => m.queries)
      .filter((q) => /request_(log|attempts)/.test(q));
    await env.DB.batch(["DROP TABLE request_log", "DROP TABLE request_attempts", ...old].map((q) => env.DB.prepare(q)));
    const t = Date.now() - 60_000;
    const plain = attemptEvent({ ts: t, latencyMs: 812.5, ttfbMs: 140.25, userAgent: "ua/1", error: null });
    const retried = [
      attemptEvent({ ts: t + 1_000, final: false, keyId: "k-1", status: 429, outcome: "rate_limited", error: "slow down", totalTokens: 0, latencyMs: 31.5 }),
      attemptEvent({ ts: t + 1_040, final: false, attempt: 2, keyId: "k-2", status: 502, outcome: "upstream_error", error: "bad gateway", ttfbMs: null }),
      attemptEvent({ ts: t + 1_100, attempt: 3, keyId: "k-3", latencyMs: 950.75, ttfbMs: 210.5 }),
    ];
    retried.forEach((e) => (e.requestId = retried[0]!.requestId));
    // A request whose final attempt had not been folded before the migration.
    const waiting = [
      attemptEvent({ ts: t + 2_000, final: false, keyId: "k-1", status: 429, outcome: "rate_limited", error: "later" }),
      attemptEvent({ ts: t + 2_050, attempt: 2, keyId: "k-2", latencyMs: 400.5 }),
    ];
    waiting[1]!.requestId = waiting[0]!.requestId;
    const insertAttempt = (e: AttemptEvent) =>
      env.DB.prepare(`INSERT INTO request_attempts (${ATTEMPT_COLUMNS.join(", ")}) VALUES (${ATTEMPT_COLUMNS.map((_, i) => `?${i + 1}`).join(", ")})`).bind(
        ...tuple(e),
      );
    const insertRequest = (events: AttemptEvent[]) => {
      const row = whole(events).request;
      const columns = Object.keys(row);
      return env.DB.prepare(`INSERT INTO request_log (${columns.join(", ")}) VALUES (${columns.map((_, i) => `?${i + 1}`).join(", ")})`).bind(
        ...Object.values(row),
      );
    };
    await env.DB.batch([...[plain, ...retried, waiting[0]!].map(insertAttempt), insertRequest([plain]), insertRequest(retried)]);
    // What the log answered from the two tables.
    const readOld = async (requestId: string) => ({
      request: (await env.DB.prepare("SELECT * FROM request_log WHERE request_id = ?1").bind(requestId).first())!,
      attempts: (await env.DB.prepare("SELECT * FROM request_attempts WHERE request_id = ?1 ORDER BY attempt").bind(requestId).all()).results,
    });
    const before = { plain: await readOld(plain.requestId), retried: await readOld(retried[0]!.requestId) };
    expect(before.retried?.attempts.map((a) => a.attempt)).toEqual([1, 2, 3]);

    const migration = env.TEST_MIGRATIONS.find((m) => m.name === MIGRATION);
    expect(migration).toBeDefined();
    await env.DB.batch(migration!.queries.map((q) => env.DB.prepare(q)));

    // Read alike; only the attempts before a final one stay in request_attempts.
    const request = (r: Record<string, unknown> | undefined) => Object.fromEntries(Object.keys(whole([plain]).request).map((c) => [c, r?.[c]]));
    for (const [events, was] of [
      [[plain], before.plain],
      [retried, before.retried],
    ] as const) {
      const now = await read(events[0]!.requestId);
      expect(request(now?.request)).toEqual(request(was?.request));
      expect(request(now?.request)).toEqual(whole([...events]).request);
      expect(now?.attempts).toEqual(was?.attempts);
      expect(now?.attempts).toEqual(whole([...events]).attempts);
    }
    expect(await env.DB.prepare("SELECT request_id, attempt FROM request_attempts ORDER BY ts").all()).toMatchObject({
      results: [
        { request_id: retried[0]!.requestId, attempt: 1 },
        { request_id: retried[0]!.requestId, attempt: 2 },
        { request_id: waiting[0]!.requestId, attempt: 1 },
      ],
    });
    expect(await read(waiting[0]!.requestId)).toBeNull();

    // The waiting request's final attempt, folded now, joins the attempt kept before the migration.
    expect((await deliver([waiting[1]!])).ackAll).toBe(true);
    const joined = await read(waiting[0]!.requestId);
    expect(request(joined?.request)).toEqual(whole(waiting).request);
    expect(joined?.attempts).toEqual(whole(waiting).attempts);
    expect(joined?.request.attempts).toBe(2);

    // Every attempt delivered again (under new event ids, so the dedupe window does not stop them): nothing changes.
    const rows = async () => (await env.DB.prepare("SELECT * FROM request_log ORDER BY request_id").all()).results;
    const held = await rows();
    const again = [plain, ...retried, ...waiting].map((e) => ({ ...e, id: crypto.randomUUID() }));
    expect((await deliver(again.reverse())).ackAll).toBe(true);
    expect(await rows()).toEqual(held);
    expect(await env.DB.prepare("SELECT COUNT(*) AS n FROM request_attempts").first()).toEqual({ n: 3 });
  });
});
