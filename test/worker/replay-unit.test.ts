import { createMessageBatch } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { PriceBook, type AttemptEvent, type KeypoolEvent, type Outcome, type PriceRow } from "../../schema";
import { insertPriceRow } from "../../storage/prices";
import { handleBatch } from "../../stats-consumer/handle-batch";
import { PublishedStates } from "../../stats-consumer/publish";
import { rebuild, requeue } from "../../stats-consumer/replay";
import { waitFor } from "./helpers";
import { seeded } from "../shared/seeded";
import { logAttempt, requestOfAttempts } from "../../storage/request-log-rows";
import { findRequest } from "../../storage/request-log";

const OUTCOMES: Outcome[] = [
  "ok",
  "ok",
  "ok",
  "ok",
  "ok",
  "ok",
  "rate_limited",
  "upstream_error",
  "network_error",
  "client_error",
  "aborted",
  "auth_failed",
  "no_balance",
];

/** 10,000 attempts (with retries, several keys, models and clients over three hours) plus probes and admin events. */
function generateEvents(now: number): KeypoolEvent[] {
  const random = seeded(7);
  const pick = <T>(xs: T[]) => xs[Math.floor(random() * xs.length)]!;
  const events: KeypoolEvent[] = [];
  let attempts = 0;
  for (let i = 0; attempts < 10_000; i++) {
    const ts = now - 3 * 3_600_000 + Math.floor(random() * 3 * 3_600_000);
    const tries = random() < 0.1 ? 2 : 1;
    const requestId = `req-${i}`;
    for (let a = 1; a <= tries; a++, attempts++) {
      const outcome = a < tries ? "rate_limited" : pick(OUTCOMES);
      const tokens = outcome === "ok" ? Math.floor(random() * 500) : 0;
      const key = Math.floor(random() * 40);
      const event: AttemptEvent = {
        v: 1,
        type: "attempt",
        id: `attempt-${i}-${a}`,
        ts: ts + a,
        requestId,
        attempt: a,
        final: a === tries,
        keyId: `key-${key}`,
        // Keys 30 to 39 belong to a second upstream.
        upstreamId: key < 30 ? "up" : "up-2",
        clientKeyId: `client-${Math.floor(random() * 5)}`,
        model: pick(["m-a", "m-b", "m-c"]),
        endpoint: "/chat/completions",
        stream: random() < 0.5,
        status: outcome === "ok" ? 200 : 500,
        outcome,
        latencyMs: Math.floor(random() * 2_000),
        ttfbMs: outcome === "network_error" ? null : Math.floor(random() * 300),
        promptTokens: Math.floor(tokens / 3),
        completionTokens: tokens - Math.floor(tokens / 3),
        totalTokens: tokens,
        cachedTokens: 0,
        reasoningTokens: 0,
        usageSource: random() < 0.1 ? "estimated" : "upstream",
        retryAfterMs: outcome === "rate_limited" ? 1_000 : null,
        rateLimit: i % 3 === 0 ? { requests: { limit: 60, remaining: Math.floor(random() * 60), resetMs: 1_000 }, tokens: null } : null,
        upstreamModel: null,
        error: outcome === "ok" ? null : `refused (${outcome})`,
        userAgent: a === tries ? "replay-test/1.0" : null,
        clientIp: a === tries && i % 2 === 0 ? "203.0.113.7" : null,
        // A quarter of the plain successes left out of the request log, as the gateway does with `requestLogSample`.
        logged: tries > 1 || outcome !== "ok" || i % 4 !== 0,
      };
      events.push(event);
    }
    if (i % 500 === 0)
      events.push({ v: 1, type: "probe", id: `probe-event-${i}`, ts, keyId: `key-${i % 40}`, kind: "balance", result: "ok", balance: i, detail: null });
    if (i % 2_000 === 0)
      events.push({ v: 1, type: "admin", id: `admin-event-${i}`, ts, actor: "test", action: "settings.update", target: null, detail: { i } });
  }
  return events;
}

async function liveState() {
  const tables = [
    "rollup_minute",
    "rollup_hour",
    "rollup_day",
    "rollup_upstream_minute",
    "rollup_upstream_hour",
    "rollup_upstream_day",
    "rollup_pool_hour",
    "rollup_client_day",
    "request_log",
    "request_attempts",
    "key_health",
    "key_capacity",
    "audit_log",
  ];
  const order: Record<string, string> = {
    key_health: "key_id",
    key_capacity: "key_id",
    audit_log: "id",
    rollup_pool_hour: "bucket",
    rollup_client_day: "client_key_id, bucket",
    request_log: "request_id",
    request_attempts: "request_id, attempt",
    rollup_upstream_minute: "bucket, upstream_id, model",
    rollup_upstream_hour: "bucket, upstream_id, model",
    rollup_upstream_day: "bucket, upstream_id, model",
  };
  const out: Record<string, unknown[]> = {};
  for (const t of tables) out[t] = (await env.DB.prepare(`SELECT * FROM ${t} ORDER BY ${order[t] ?? "bucket, key_id, model, client_key_id"}`).all()).results;
  return out;
}

async function archivedRecords(prefix: string): Promise<number> {
  let n = 0;
  let cursor: string | undefined;
  do {
    const page = await env.ARCHIVE.list({ prefix, cursor, include: ["customMetadata"] });
    for (const o of page.objects) n += Number(o.customMetadata?.records ?? 0);
    cursor = page.truncated ? page.cursor : undefined;
  } while (cursor);
  return n;
}

describe("audit replay over 10,000 events", () => {
  it("rebuilds rollups and health identical to the live projections, and requeue changes nothing", { timeout: 180_000 }, async () => {
    const now = Date.now();
    const events = generateEvents(now);
    expect(events.filter((e) => e.type === "attempt").length).toBeGreaterThanOrEqual(10_000);
    // Prices with a history: m-a's changes halfway through, m-b has a pool-wide price and its upstream's own
    // (which wins) until it is removed an hour before now; m-c has none (its cost is unknown).
    const half = now - 90 * 60_000;
    const prices: PriceRow[] = [
      { model: "m-a", upstreamId: "", input: 150_000, cachedInput: null, output: 600_000, perRequest: null, source: "t", effectiveFrom: 0, removed: false },
      {
        model: "m-a",
        upstreamId: "",
        input: 2_500_000,
        cachedInput: null,
        output: 10_000_000,
        perRequest: null,
        source: "t",
        effectiveFrom: half,
        removed: false,
      },
      { model: "m-b", upstreamId: "", input: 270_000, cachedInput: null, output: 1_100_000, perRequest: 1_000, source: "t", effectiveFrom: 0, removed: false },
      { model: "m-b", upstreamId: "up", input: 1, cachedInput: null, output: 1, perRequest: null, source: "t", effectiveFrom: 0, removed: false },
      {
        model: "m-b",
        upstreamId: "up",
        input: null,
        cachedInput: null,
        output: null,
        perRequest: null,
        source: "t",
        effectiveFrom: now - 3_600_000,
        removed: true,
      },
    ];
    await env.DB.batch(prices.map((p, i) => insertPriceRow(env.DB, `replay-price-${i}`, p, p.removed, now)));
    const book = new PriceBook(prices);
    // Delivered out of order, in batches of 100, with a tenth of the batches delivered twice.
    const random = seeded(11);
    const shuffled = [...events].sort(() => random() - 0.5);
    const clock = { t: now };
    let delivered = 0;
    const time = { now: () => clock.t, sleep: async (ms: number) => void (clock.t += ms), published: new PublishedStates() };
    for (let i = 0; i < shuffled.length; i += 100) {
      const slice = shuffled.slice(i, i + 100);
      const times = i % 1_000 === 0 ? 2 : 1;
      for (let r = 0; r < times; r++) {
        clock.t += 1_000;
        const batch = createMessageBatch(
          "keypool-events",
          slice.map((body, j) => ({ id: `m-${i}-${j}-${r}`, timestamp: new Date(), attempts: 1, body })),
        );
        const result = await handleBatch(batch, env, time);
        expect(result).toMatchObject({ retried: false, malformed: 0 });
        delivered += slice.length;
      }
    }
    const attempts = events.filter((e): e is AttemptEvent => e.type === "attempt");
    // Each keyed rollup holds every attempt twice: once in its key's rows, once in its client key's.
    const KINDS = ["client_key_id = '*'", "key_id = '*'"];
    for (const table of ["rollup_minute", "rollup_hour", "rollup_day"])
      for (const kind of KINDS)
        expect({
          table,
          kind,
          ...(await env.DB.prepare(`SELECT SUM(requests) AS requests, SUM(attempts) AS attempts FROM ${table} WHERE ${kind}`).first()),
        }).toEqual({
          table,
          kind,
          requests: attempts.filter((e) => e.final).length,
          attempts: attempts.length,
        });
    expect(await env.DB.prepare("SELECT COUNT(*) AS n FROM rollup_minute WHERE key_id <> '*' AND client_key_id <> '*'").first()).toEqual({ n: 0 });
    // The upstream tables hold every attempt once, under the upstream its event names, and by bucket and model they are the key rows summed.
    const perUpstream = new Map<string, number>();
    for (const e of attempts) perUpstream.set(e.upstreamId, (perUpstream.get(e.upstreamId) ?? 0) + 1);
    expect(perUpstream.size).toBeGreaterThan(1);
    for (const grain of ["minute", "hour", "day"]) {
      const { results: byUpstream } = await env.DB.prepare(
        `SELECT upstream_id, SUM(attempts) AS attempts FROM rollup_upstream_${grain} GROUP BY upstream_id ORDER BY upstream_id`,
      ).all<{ upstream_id: string; attempts: number }>();
      expect({ grain, byUpstream }).toEqual({
        grain,
        byUpstream: [...perUpstream].sort(([a], [b]) => (a < b ? -1 : 1)).map(([upstream_id, n]) => ({ upstream_id, attempts: n })),
      });
      const byModel = (from: string) =>
        env.DB.prepare(
          `SELECT bucket, model, SUM(requests) AS requests, SUM(attempts) AS attempts, SUM(total_tokens) AS tokens, SUM(cost_micros) AS cost,
             MAX(latency_ms_max) AS latency_max, MAX(last_at) AS last_at FROM ${from} GROUP BY bucket, model ORDER BY bucket, model`,
        ).all();
      expect((await byModel(`rollup_upstream_${grain}`)).results).toEqual((await byModel(`rollup_${grain} WHERE client_key_id = '*'`)).results);
    }
    // The pool-wide hour rollup is rollup_hour summed by hour, column for column.
    const columns = "requests, attempts, successes, rate_limited, total_tokens, estimated_tokens, cached_tokens, latency_ms_sum, ttfb_count";
    const summed = (from: string) =>
      env.DB.prepare(
        `SELECT bucket, ${columns
          .split(", ")
          .map((c) => `SUM(${c}) AS ${c}`)
          .join(", ")}, MAX(latency_ms_max) AS latency_ms_max FROM ${from} GROUP BY bucket ORDER BY bucket`,
      ).all();
    // Spend is each attempt's usage at the price in force at its time, summed exactly; m-c's is unknown.
    let cost = 0;
    let unpriced = 0;
    for (const e of attempts) {
      const [micros, none] = book.attemptCost(e);
      cost += micros;
      unpriced += none;
    }
    expect(cost).toBeGreaterThan(0);
    expect(unpriced).toBeGreaterThan(0);
    for (const from of [
      ...["rollup_minute", "rollup_hour", "rollup_day"].flatMap((table) => KINDS.map((kind) => `${table} WHERE ${kind}`)),
      "rollup_pool_hour",
      "rollup_client_day",
    ])
      expect({ from, ...(await env.DB.prepare(`SELECT SUM(cost_micros) AS cost, SUM(unpriced) AS unpriced FROM ${from}`).first()) }).toEqual({
        from,
        cost,
        unpriced,
      });
    // The request log: a row per request the gateway kept (its final attempt) and per attempt, whatever order and batches
    // they came in; the successes it left out are in none of it, and counted above all the same.
    const logged = attempts.filter((e) => e.logged);
    expect(logged.length).toBeLessThan(attempts.length);
    expect(await env.DB.prepare("SELECT COUNT(*) AS requests, SUM(attempts) AS attempts FROM request_log").first()).toEqual({
      requests: logged.filter((e) => e.final).length,
      attempts: logged.length,
    });
    // The final attempt is its request's row; request_attempts keeps the ones before it.
    expect(await env.DB.prepare("SELECT COUNT(*) AS n FROM request_attempts").first()).toEqual({ n: logged.filter((e) => !e.final).length });
    // Each row and its attempts as made from all the request's attempts at once, whatever order the fold took them in.
    const byRequest = new Map<string, AttemptEvent[]>();
    for (const e of logged) byRequest.set(e.requestId, [...(byRequest.get(e.requestId) ?? []), e]);
    const retried = [...byRequest.values()].filter((a) => a.length > 1);
    expect(retried.length).toBeGreaterThan(100);
    const whole = [...byRequest.values()].map((a) => requestOfAttempts(a.map((e) => logAttempt(e, ...book.attemptCost(e))))!);
    const { results: rows } = await env.DB.prepare(`SELECT ${Object.keys(whole[0]!.request).join(", ")} FROM request_log ORDER BY request_id`).all();
    expect(rows).toEqual(whole.map((w) => w.request).sort((a, b) => (String(a.request_id) < String(b.request_id) ? -1 : 1)));
    for (const a of retried.slice(0, 20)) {
      const w = whole.find((x) => x.request.request_id === a[0]!.requestId)!;
      const found = await findRequest([env.DB], a[0]!.requestId);
      expect(
        found?.attempts.map((row) => Object.fromEntries(Object.entries(row).filter(([column]) => column !== "key_masked" && column !== "upstream_name"))),
      ).toEqual(w.attempts);
    }
    const pool = await summed("rollup_pool_hour");
    expect(pool.results.length).toBeGreaterThan(2);
    for (const kind of KINDS) expect(pool.results).toEqual((await summed(`rollup_hour WHERE ${kind}`)).results);

    const report = await rebuild(env, { jobId: "t1" }, clock.t);
    expect(report.events).toBe(delivered);
    for (const [table, diff] of Object.entries(report.compared)) {
      expect({ table, onlyLive: diff.onlyLive, onlyRebuilt: diff.onlyRebuilt }).toEqual({ table, onlyLive: 0, onlyRebuilt: 0 });
      expect(diff.live).toBeGreaterThan(0);
    }
    expect(report.identical).toBe(true);

    // A ranged rebuild compares only the buckets wholly inside the range.
    const ranged = await rebuild(env, { jobId: "t2", from: now - 2 * 3_600_000, to: now - 3_600_000 }, clock.t);
    expect(ranged.identical).toBe(true);
    expect(ranged.compared.rollup_minute!.live).toBeGreaterThan(0);
    expect(ranged.compared.key_health).toBeUndefined();
    expect(report.compared.key_capacity!.live).toBeGreaterThan(0);

    const before = await liveState();
    const archivedBefore = await archivedRecords("events/");
    // Requeue everything, a quarter of the time span at a time (Miniflare's local queue holds
    // at most 10,000 pending messages); the real consumer folds and archives them again.
    let requeued = 0;
    const start = now - 3 * 3_600_000;
    for (let q = 0; q < 4; q++) {
      const range = { jobId: `t3-${q}`, from: q === 0 ? 0 : start + q * 2_700_000, to: q === 3 ? Number.MAX_SAFE_INTEGER : start + (q + 1) * 2_700_000 };
      requeued += (await requeue(env, range)).requeued;
      await waitFor(
        async () => ((await archivedRecords("events/")) >= archivedBefore + requeued ? true : undefined),
        "the requeued events to be consumed",
        60_000,
      );
    }
    expect(requeued).toBe(archivedBefore);
    expect(await liveState()).toEqual(before);
  });
});
