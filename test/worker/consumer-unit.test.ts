import { createExecutionContext, createMessageBatch, getQueueResult } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import {
  DAY_MS,
  HOUR_MS,
  MINUTE_MS,
  PriceBook,
  SNAPSHOT_KV_KEY,
  USAGE_KV_KEY,
  dayWindowStart,
  dayStart,
  defaultSettings,
  monthStart,
  packEvents,
  type AdminEvent,
  type AttemptEvent,
  type DayRule,
} from "../../schema";
import { readClientDays } from "../../storage/rollups";
import { writeSettings } from "../../storage/settings";
import { parsePoolUsage } from "../../gateway/logic/usage-view";
import { publishUsage } from "../../stats-consumer/storage/usage-store";
import { EVENTS_PER_TRANSACTION } from "../../stats-consumer/handle-batch";
import { toHealthRows } from "../../stats-consumer/logic/health-rows";
import { toBatchRows } from "../../stats-consumer/logic/rollup-rows";
import { ingestBatch } from "../../stats-consumer/storage/ingest-db";
import consumer from "../../stats-consumer/index";
import { waitFor } from "./helpers";
import { attemptEvent } from "../fixtures/events";

function attempt(clientKeyId: string, extra: Partial<AttemptEvent> = {}): AttemptEvent {
  return attemptEvent({
    clientKeyId,
    keyId: "k-unit",
    upstreamId: "u-unit",
    model: "m-unit",
    latencyMs: 20,
    ttfbMs: 8,
    promptTokens: 10,
    completionTokens: 5,
    totalTokens: 15,
    cachedTokens: 2,
    reasoningTokens: 1,
    ...extra,
  });
}

function messages(bodies: unknown[]) {
  return bodies.map((body, i) => ({ id: `m${i}-${crypto.randomUUID()}`, timestamp: new Date(), attempts: 1, body }));
}

async function deliver(bodies: unknown[], queue = "keypool-events") {
  const batch = createMessageBatch(queue, messages(bodies));
  const ctx = createExecutionContext();
  await consumer.queue(batch, env, ctx);
  return getQueueResult(batch, ctx);
}

/** Keys with the limits given, in an upstream of their own. */
async function addKeys(...keys: [id: string, limits: Record<string, unknown>][]) {
  const now = Date.now();
  const upstream = `usage-up-${crypto.randomUUID()}`;
  await env.DB.batch([
    env.DB.prepare(
      "INSERT INTO upstreams (id, name, base_url, kind, models, enabled, created_at, updated_at) VALUES (?1, 'u', 'https://u.test/v1', 'custom', '[]', 1, ?2, ?2)",
    ).bind(upstream, now),
    ...keys.map(([id, limits]) =>
      env.DB.prepare(
        "INSERT INTO keys (id, upstream_id, secret_enc, fingerprint, masked, limits, created_at, updated_at) VALUES (?1, ?2, 'v1.a.b', ?1, 'sk-…', ?3, ?4, ?4)",
      ).bind(id, upstream, JSON.stringify(limits), now),
    ),
  ]);
}

async function totals(clientKeyId: string) {
  const tables = ["rollup_minute", "rollup_hour", "rollup_day"];
  const rows = await Promise.all(
    tables.map((t) =>
      env.DB.prepare(
        `SELECT SUM(requests) AS requests, SUM(attempts) AS attempts, SUM(successes) AS ok, SUM(rate_limited) AS rl, SUM(total_tokens) AS tokens FROM ${t} WHERE client_key_id = ?1`,
      )
        .bind(clientKeyId)
        .first(),
    ),
  );
  return rows;
}

describe("stats consumer", () => {
  it("counts a batch delivered twice only once, in every rollup", async () => {
    const client = crypto.randomUUID();
    const events = [attempt(client), attempt(client), attempt(client)];
    const first = await deliver(events);
    expect(first.ackAll).toBe(true);
    // Each consumed batch is archived, raw, in consumption order.
    const archived = (await env.ARCHIVE.list({ prefix: "events/" })).objects.map((o) => o.key).sort();
    const text = await (await env.ARCHIVE.get(archived.at(-1)!))!.text();
    expect(
      text
        .trim()
        .split("\n")
        .map((l) => JSON.parse(l).id),
    ).toEqual(events.map((e) => e.id));
    await deliver(events);
    for (const row of await totals(client)) expect(row).toEqual({ requests: 3, attempts: 3, ok: 3, rl: 0, tokens: 45 });
  });

  it("counts only the new events of a batch that repeats some already counted", async () => {
    const client = crypto.randomUUID();
    const first = [attempt(client), attempt(client)];
    await deliver(first);
    const result = await deliver([...first, attempt(client, { outcome: "rate_limited", status: 429, final: false }), attempt(client)]);
    expect(result.ackAll).toBe(true);
    for (const row of await totals(client)) expect(row).toEqual({ requests: 3, attempts: 4, ok: 3, rl: 1, tokens: 60 });
    expect(await env.DB.prepare("SELECT COUNT(*) AS n FROM ingest_stage").first()).toEqual({ n: 0 });
  });

  it("folds a batch of new events in one transaction of summed rows, and a repeated one in a second, event by event", async () => {
    const client = crypto.randomUUID();
    const events = Array.from({ length: 40 }, () => attempt(client));
    const transactions: number[] = [];
    const db = new Proxy(env.DB, {
      get(target, prop) {
        if (prop === "batch") return (statements: D1PreparedStatement[]) => (transactions.push(statements.length), target.batch(statements));
        const value = Reflect.get(target, prop) as unknown;
        return typeof value === "function" ? value.bind(target) : value;
      },
    });
    const fold = () => ingestBatch(db, toBatchRows(events, "UTC", new PriceBook([])), toHealthRows(events, defaultSettings), []);
    expect(toBatchRows(events, "UTC", new PriceBook([])).groups.length).toBeLessThanOrEqual(2); // one key, model and client: a minute or two
    await fold();
    expect(transactions).toHaveLength(1);
    await fold();
    expect(transactions).toHaveLength(3);
    for (const row of await totals(client)) expect(row).toEqual({ requests: 40, attempts: 40, ok: 40, rl: 0, tokens: 600 });
  });

  it("unpacks packed messages, dead-letters a malformed event alone, and folds more events than one transaction takes", async () => {
    const client = crypto.randomUUID();
    const dead = await env.ARCHIVE.list({ prefix: "dead/" });
    const count = EVENTS_PER_TRANSACTION * 2 + 17;
    const events = Array.from({ length: count }, () => attempt(client));
    const packed = packEvents(events);
    const result = await deliver([{ events: [...packed[0]!.events, { type: "attempt", id: "short" }] }, ...packed.slice(1), attempt(client)]);
    expect(result.ackAll).toBe(true);
    for (const row of await totals(client)) expect(row).toEqual({ requests: count + 1, attempts: count + 1, ok: count + 1, rl: 0, tokens: 15 * (count + 1) });
    await waitFor(
      async () => ((await env.ARCHIVE.list({ prefix: "dead/" })).objects.length > dead.objects.length ? true : undefined),
      "the dead letter to be archived",
    );
    const newest = (await env.ARCHIVE.list({ prefix: "dead/" })).objects
      .map((o) => o.key)
      .sort()
      .at(-1)!;
    const lines = (await (await env.ARCHIVE.get(newest))!.text())
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l));
    expect(lines.map((l) => l.body)).toEqual([{ type: "attempt", id: "short" }]);
    // Delivered again (a transaction committed before a retry, say), nothing counts twice.
    await deliver(packed);
    for (const row of await totals(client)) expect(row).toMatchObject({ requests: count + 1, attempts: count + 1 });
  });

  it("folds a batch from any event queue alike, and keeps a batch from another environment's dead-letter queue as dead letters", async () => {
    const counted = crypto.randomUUID();
    const result = await deliver([attempt(counted)], "keypool-events-3");
    expect(result.ackAll).toBe(true);
    for (const row of await totals(counted)) expect(row).toMatchObject({ requests: 1, attempts: 1 });
    // `npm run deploy -- --env staging` names the dead-letter queue keypool-staging-events-dlq.
    const deadClient = crypto.randomUUID();
    const dead = await env.ARCHIVE.list({ prefix: "dead/" });
    await deliver([attempt(deadClient)], "keypool-staging-events-dlq");
    await waitFor(
      async () => ((await env.ARCHIVE.list({ prefix: "dead/" })).objects.length > dead.objects.length ? true : undefined),
      "the dead letter to be archived",
    );
    const archived = await Promise.all(
      (await env.ARCHIVE.list({ prefix: "dead/" })).objects
        .filter((o) => !dead.objects.some((d) => d.key === o.key))
        .map(async (o) => (await env.ARCHIVE.get(o.key))!.text()),
    );
    expect(archived.join("\n")).toContain(deadClient);
    for (const row of await totals(deadClient)) expect(row).toMatchObject({ requests: null });
  });

  it("counts retries of one request as one request and several attempts", async () => {
    const client = crypto.randomUUID();
    const requestId = crypto.randomUUID();
    await deliver([
      attempt(client, { requestId, final: false, outcome: "rate_limited", status: 429, totalTokens: 0, promptTokens: 0, completionTokens: 0 }),
      attempt(client, { requestId, attempt: 2 }),
    ]);
    const [minute] = await totals(client);
    expect(minute).toEqual({ requests: 1, attempts: 2, ok: 1, rl: 1, tokens: 15 });
  });

  it("acknowledges a malformed message and still stores the rest", async () => {
    const client = crypto.randomUUID();
    const dead = await env.ARCHIVE.list({ prefix: "dead/" });
    const result = await deliver([attempt(client), { type: "attempt", id: "short" }, "not json at all"]);
    expect(result.ackAll).toBe(true);
    expect(result.retryBatch.retry).toBe(false);
    // The auxiliary consumer archives what reached the dead-letter queue.
    await waitFor(
      async () => ((await env.ARCHIVE.list({ prefix: "dead/" })).objects.length > dead.objects.length ? true : undefined),
      "the dead letters to be archived",
    );
    const newest = (await env.ARCHIVE.list({ prefix: "dead/" })).objects
      .map((o) => o.key)
      .sort()
      .at(-1)!;
    const lines = (await (await env.ARCHIVE.get(newest))!.text())
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l));
    expect(lines.map((l) => l.body)).toEqual([{ type: "attempt", id: "short" }, "not json at all"]);
    expect(lines[0]).toMatchObject({ deadLetter: "malformed" });
    const [minute] = await totals(client);
    expect(minute).toMatchObject({ requests: 1 });
  });

  it("gives the same rollups whatever order events arrive in", async () => {
    const a = crypto.randomUUID();
    const b = crypto.randomUUID();
    const base = Date.now() - 3 * 60_000;
    const events = (client: string) => [0, 1, 2, 3].map((i) => attempt(client, { id: `${client}-${i}`, ts: base + i * 50_000, totalTokens: i + 1 }));
    await deliver(events(a));
    const reversed = events(b).reverse();
    await deliver(reversed.slice(0, 2));
    await deliver(reversed.slice(2));
    const shape = async (client: string) =>
      (await env.DB.prepare("SELECT bucket, requests, total_tokens FROM rollup_minute WHERE client_key_id = ?1 ORDER BY bucket").bind(client).all()).results;
    expect(await shape(b)).toEqual(await shape(a));
  });

  it("keeps each key's latest rate-limit reading per window, whatever the order and batching, and a redelivery changes nothing", async () => {
    const base = Date.now() - 60_000;
    const reading = (remaining: number, at: number, tokens = false) =>
      attempt("rl-client", {
        ts: at,
        ttfbMs: 10,
        rateLimit: { requests: { limit: 60, remaining, resetMs: 2_000 }, tokens: tokens ? { limit: 1_000, remaining: remaining * 10, resetMs: 500 } : null },
      });
    const capacity = async (key: string) => env.DB.prepare("SELECT * FROM key_capacity WHERE key_id = ?1").bind(key).first();
    const events = (key: string) => [reading(50, base, true), reading(40, base + 1_000), reading(45, base + 2_000)].map((e) => ({ ...e, keyId: key }));
    const [a, b] = [`cap-a-${crypto.randomUUID()}`, `cap-b-${crypto.randomUUID()}`];
    await deliver(events(a));
    const reversed = events(b).reverse();
    for (const e of reversed) await deliver([e]);
    await deliver(reversed);
    const row = await capacity(a);
    // The requests window from the latest answer; the tokens window from the only one that had it.
    expect(row).toMatchObject({
      req_ts: base + 2_010,
      req_limit: 60,
      req_remaining: 45,
      req_reset_at: base + 4_010,
      tok_ts: base + 10,
      tok_remaining: 500,
      tok_reset_at: base + 510,
    });
    expect({ ...(await capacity(b)), key_id: a }).toEqual(row);
  });

  it("publishes the pool's usage against limits: counts for keys with limits, the provider's word for keys nearly spent, nothing for the rest", async () => {
    const now = Date.now();
    const [limited, spent, roomy, both] = ["limited", "spent", "roomy", "both"].map((n) => `usage-${n}-${crypto.randomUUID()}`) as [
      string,
      string,
      string,
      string,
    ];
    await addKeys([limited, { rpm: 100, rpd: 1_000 }], [spent, {}], [roomy, {}], [both, { rpd: 50 }]);
    const word = (remaining: number) => ({ requests: { limit: 100, remaining, resetMs: 30_000 }, tokens: null });
    await env.DB.prepare("UPDATE meta SET value = 0 WHERE name = 'usage_published_at'").run();
    await deliver([
      attempt("usage-client", { keyId: limited, totalTokens: 15, ts: now - 5 }),
      attempt("usage-client", { keyId: limited, totalTokens: 15, ts: now - 3 }),
      attempt("usage-client", { keyId: spent, rateLimit: word(5) }),
      attempt("usage-client", { keyId: roomy, rateLimit: word(90) }),
      attempt("usage-client", { keyId: both, totalTokens: 15, rateLimit: word(0) }),
    ]);
    const usage = parsePoolUsage((await env.SNAPSHOT.get(USAGE_KV_KEY, "text")) ?? "")?.view;
    // countedTo: when the latest attempt the counts hold was sent.
    expect(usage?.keys.get(limited)).toMatchObject({
      minute: { requests: 2, tokens: 30 },
      previousMinute: { requests: 0, tokens: 0 },
      day: { requests: 2, tokens: 30 },
      requests: null,
      tokens: null,
      countedTo: now - 3,
    });
    expect(usage?.keys.get(spent)).toMatchObject({ requests: { limit: 100, remaining: 5 }, tokens: null });
    expect(usage?.keys.get(roomy)).toBeUndefined();
    // A key with a limit that its provider says is spent: its counts and the word.
    expect(usage?.keys.get(both)).toMatchObject({ day: { requests: 1, tokens: 15 }, requests: { limit: 100, remaining: 0 }, tokens: null });
    expect(usage?.keys.size).toBe(3);
  });

  it("publishes the same usage when the keys go to D1 in many short id lists as in one", async () => {
    const ids = Array.from({ length: 7 }, () => crypto.randomUUID());
    await addKeys(...ids.map((id, i): [string, Record<string, unknown>] => [id, i % 2 === 0 ? { rpm: 100 } : { rpd: 1_000, day: { reset: "rolling" } }]));
    const now = Date.now();
    await deliver(
      ids.flatMap((keyId, i) => Array.from({ length: i + 1 }, (_, j) => attempt("usage-client", { keyId, totalTokens: 10 + j, ts: now - 100 + j }))),
    );
    const publishWith = async (idListBytes?: number) => {
      await env.DB.prepare("UPDATE meta SET value = 0 WHERE name = 'usage_published_at'").run();
      expect(await publishUsage([env.DB], env.SNAPSHOT, env.EVENTS, Date.now(), idListBytes)).not.toBeNull();
      const view = parsePoolUsage((await env.SNAPSHOT.get(USAGE_KV_KEY, "text")) ?? "")!.view;
      return ids.map((id) => view.keys.get(id));
    };
    // Two UUIDs a list: four lists of keys, and two day windows (UTC midnight and rolling) split again.
    const short = await publishWith(80);
    const whole = await publishWith();
    expect(short.map((u) => u?.day.requests)).toEqual([1, 2, 3, 4, 5, 6, 7]);
    expect(short.map((u) => u?.countedTo)).toEqual(ids.map((_, i) => now - 100 + i));
    expect(short.map((u) => ({ ...u, minuteStart: 0, dayStart: 0, dayResetAt: 0 }))).toEqual(
      whole.map((u) => ({ ...u, minuteStart: 0, dayStart: 0, dayResetAt: 0 })),
    );
  });

  it("counts each key's day exactly whatever its day rule, from the pool's day buckets and the hours around them, and from hours after the pool's zone changed", async () => {
    const rules: DayRule[] = [
      { reset: "local", hour: 0, timeZone: "UTC" },
      { reset: "local", hour: 0, timeZone: "America/Los_Angeles" },
      { reset: "local", hour: 5, timeZone: "Europe/Berlin" },
      { reset: "local", hour: 0, timeZone: "Asia/Kolkata" },
      { reset: "rolling" },
    ];
    // Late in a UTC day (Pacific's day: today's bucket less its first 8 hours; rolling: today's bucket and
    // yesterday's last hours) and early in one (Berlin's day at 5: yesterday's and today's buckets less 4 hours).
    const sent = new Map<string, { ts: number; tokens: number }[]>();
    /** Keys of every rule, each with 30 hours of traffic up to `now`: an attempt every 7 minutes and 13 seconds. */
    const trafficUpTo = async (now: number) => {
      const keys = rules.map((rule) => ({ rule, id: `usage-day-${crypto.randomUUID()}` }));
      await addKeys(...keys.map(({ id, rule }): [string, Record<string, unknown>] => [id, { rpd: 100_000, day: rule }]));
      for (const { id } of keys)
        sent.set(
          id,
          Array.from({ length: 250 }, (_, i) => ({ ts: now - i * 433_000, tokens: 10 + (i % 7) })),
        );
      const bodies = keys.flatMap(({ id }) => sent.get(id)!.map(({ ts, tokens }) => attempt("usage-day-client", { keyId: id, ts, totalTokens: tokens })));
      for (let i = 0; i < bodies.length; i += 250) await deliver(bodies.slice(i, i + 250));
      return { now, keys };
    };
    const expectExact = async (cases: Awaited<ReturnType<typeof trafficUpTo>>[]) => {
      for (const { now, keys } of cases) {
        await env.DB.prepare("UPDATE meta SET value = 0 WHERE name = 'usage_published_at'").run();
        expect(await publishUsage([env.DB], env.SNAPSHOT, env.EVENTS, now)).not.toBeNull();
        const view = parsePoolUsage((await env.SNAPSHOT.get(USAGE_KV_KEY, "text")) ?? "")!.view;
        for (const { id, rule } of keys) {
          // A day counts every minute bucket from its start; a rolling day from the start of the hour 24 hours ago.
          const from = rule.reset === "rolling" ? Math.floor((now - DAY_MS) / HOUR_MS) * HOUR_MS : Math.ceil(dayWindowStart(rule, now) / MINUTE_MS) * MINUTE_MS;
          const inDay = sent.get(id)!.filter((a) => a.ts >= from);
          expect(view.keys.get(id)?.day, `${JSON.stringify(rule)} at ${new Date(now).toISOString()}`).toEqual({
            requests: inDay.length,
            tokens: inDay.reduce((n, a) => n + a.tokens, 0),
          });
        }
      }
    };
    const zoneSince = async () => (await env.DB.prepare("SELECT time_zone_since AS t FROM settings").first<{ t: number }>())?.t;
    // A pool that has always counted its days in UTC.
    await writeSettings(env.DB, defaultSettings, Date.UTC(2026, 10, 1));
    expect(await zoneSince()).toBe(0);
    // Late in a UTC day (Pacific's day: today's bucket less its first 8 hours; rolling: today's bucket and
    // yesterday's last hours) and early in one (Berlin's day at 5: yesterday's and today's buckets less 4 hours).
    const utcDays = [await trafficUpTo(Date.UTC(2026, 10, 20, 20, 30, 20)), await trafficUpTo(Date.UTC(2026, 10, 20, 2, 30, 40))];
    await expectExact(utcDays);
    // Those attempts were folded into UTC days: once the pool counts its days in Pacific time, they are
    // summed from hours (its Pacific day buckets began after the change, and hold none of them).
    const changedAt = Date.now();
    await writeSettings(env.DB, { ...defaultSettings, timeZone: "America/Los_Angeles" }, changedAt);
    expect(await zoneSince()).toBe(changedAt);
    // (With the sums of past hours kept by the publishes above dropped, the past hours are read again.)
    await env.DB.prepare("DELETE FROM usage_kept").run();
    await expectExact(utcDays);
    // Attempts folded after the change go to Pacific day buckets, which the sums read two days on.
    await expectExact([await trafficUpTo(changedAt + 2 * DAY_MS + 5 * HOUR_MS)]);
    // Writing the settings again with the same zone leaves the instant it was set; going back to UTC moves it.
    await writeSettings(env.DB, { ...defaultSettings, timeZone: "America/Los_Angeles", currency: "EUR" }, changedAt + 1_000);
    expect(await zoneSince()).toBe(changedAt);
    await writeSettings(env.DB, defaultSettings, changedAt + 2_000);
    expect(await zoneSince()).toBe(changedAt + 2_000);
    await env.DB.prepare("UPDATE meta SET value = 0 WHERE name = 'usage_published_at'").run();
  });

  it("keeps each key's sum of past hours in D1, reads the last hours anew, moves the sums on an hour at a time, and adds attempts folded late", async () => {
    const now = Date.now();
    // A day that began six hours ago (on the hour, in UTC) and a rolling day: both longer than the hours read anew.
    const rules: DayRule[] = [{ reset: "local", hour: (new Date(now).getUTCHours() + 18) % 24, timeZone: "UTC" }, { reset: "rolling" }];
    const keys = rules.map((rule) => ({ rule, id: `usage-kept-${crypto.randomUUID()}` }));
    await addKeys(...keys.map(({ id, rule }): [string, Record<string, unknown>] => [id, { rpd: 100_000, day: rule }]));
    // The pool's zone set just now: past hours are read from hour buckets alone, the ones this test changes behind the
    // fold's back (with day buckets usable, a read of them could come from day buckets the changes left alone).
    const zoneSince = (await env.DB.prepare("SELECT time_zone_since AS t FROM settings").first<number>("t")) ?? 0;
    await env.DB.prepare(
      `INSERT INTO settings (id, value, updated_at, time_zone_since) VALUES (1, ?1, ?2, ?2) ON CONFLICT (id) DO UPDATE SET time_zone_since = ?2`,
    )
      .bind(JSON.stringify(defaultSettings), now)
      .run();
    const sent = new Map(keys.map(({ id }) => [id, Array.from({ length: 250 }, (_, i) => now - 1_000 - i * 433_000)]));
    // Folded as the consumer folds a batch, without the publish that follows it (at this clock, not the test's `now`).
    const send = async (ts: number[][]) => {
      const events = keys.flatMap(({ id }, k) => (ts[k] ?? []).map((t) => attempt("usage-kept-client", { keyId: id, ts: t })));
      for (let i = 0; i < events.length; i += 250) await ingestBatch(env.DB, toBatchRows(events.slice(i, i + 250), "UTC", new PriceBook([])), [], []);
    };
    await send(keys.map(({ id }) => sent.get(id)!));
    const publishedDays = async (at = now) => {
      await env.DB.prepare("UPDATE meta SET value = 0 WHERE name = 'usage_published_at'").run();
      expect(await publishUsage([env.DB], env.SNAPSHOT, env.EVENTS, at)).not.toBeNull();
      const view = parsePoolUsage((await env.SNAPSHOT.get(USAGE_KV_KEY, "text")) ?? "")!.view;
      return keys.map(({ id }) => view.keys.get(id)?.day.requests);
    };
    const starts = (at = now) => [now - 6 * HOUR_MS - (now % HOUR_MS), Math.floor((at - DAY_MS) / HOUR_MS) * HOUR_MS];
    const inDay = (at = now) => keys.map(({ id }, k) => sent.get(id)!.filter((ts) => ts >= starts(at)[k]!).length);
    const keptRows = async () =>
      Promise.all(keys.map(({ id }) => env.DB.prepare("SELECT start, through, requests FROM usage_kept WHERE key_id = ?1").bind(id).first()));
    const liveFrom = (at: number) => Math.floor((at - 5 * 60_000) / HOUR_MS) * HOUR_MS - HOUR_MS;
    expect(await publishedDays()).toEqual(inDay());
    // Each key's past hours, up to the hour before the current one (or the one before that, five minutes into an hour).
    const kept = await keptRows();
    expect(kept.map((r) => [r?.start, r?.through])).toEqual(starts().map((start) => [start, liveFrom(now)]));
    expect(kept.map((r) => r?.requests)).toEqual(keys.map(({ id }, k) => sent.get(id)!.filter((ts) => ts >= starts()[k]! && ts < liveFrom(now)).length));
    // Rows of an hour four hours ago changed behind the fold's back (no writer does): the kept sums do not see them,
    // while attempts of the last minutes are read anew.
    const changed = now - 4 * HOUR_MS - (now % HOUR_MS);
    const change = (bucket: number, by: number) =>
      env.DB.prepare(`UPDATE rollup_hour SET requests = requests + ?1 WHERE bucket = ?2 AND client_key_id = '*' AND key_id IN (?3, ?4)`)
        .bind(by, bucket, keys[0]!.id, keys[1]!.id)
        .run();
    await change(changed, 1000);
    const recent = [now - 500, now - 400];
    for (const { id } of keys) sent.get(id)!.push(...recent);
    await send([recent, recent]);
    expect(await publishedDays()).toEqual(inDay());
    // Attempts sent five hours ago (in both days' kept hours) and thirty (in neither) are folded late: the fold adds
    // those in a key's kept hours to its sum, and nothing else is read again.
    sent.get(keys[0]!.id)!.push(now - 5 * HOUR_MS);
    sent.get(keys[1]!.id)!.push(now - 5 * HOUR_MS, now - 30 * HOUR_MS);
    await send([[now - 5 * HOUR_MS], [now - 5 * HOUR_MS, now - 30 * HOUR_MS]]);
    expect(await publishedDays()).toEqual(inDay());
    // A key whose row is missing (a key added, or one the publish dropped) has its past hours read and kept again: its
    // sum now holds the changed rows.
    await env.DB.prepare("DELETE FROM usage_kept WHERE key_id = ?1").bind(keys[0]!.id).run();
    expect(await publishedDays()).toEqual(inDay().map((n, k) => n + (k === 0 ? 1000 : 0)));
    // An hour on, the sums are moved on by the hour that left the hours read anew (and, for the rolling day, less the
    // hour it left) rather than read again: rows changed behind the fold's back in an hour they hold are not seen.
    await change(changed + HOUR_MS, 500);
    expect(await publishedDays(now + HOUR_MS)).toEqual(inDay(now + HOUR_MS).map((n, k) => n + (k === 0 ? 1000 : 0)));
    expect((await keptRows()).map((r) => [r?.start, r?.through])).toEqual(starts(now + HOUR_MS).map((start) => [start, liveFrom(now + HOUR_MS)]));
    // A publish whose clock is behind the last one's (its batch ran late) counts its own day exactly: a row kept to a
    // later hour is read as it is, with the hours after it; a row of a later rolling day's start is read anew for its own.
    expect(await publishedDays(now)).toEqual(inDay(now).map((n, k) => n + (k === 0 ? 1000 : 1500)));
    expect((await keptRows()).map((r) => [r?.start, r?.through])).toEqual([
      [starts(now)[0], liveFrom(now + HOUR_MS)],
      [starts(now)[1], liveFrom(now)],
    ]);
    // A row not moved on for over three hours is dropped and read again, changed rows and all; so is a deleted key's.
    const gone = `usage-kept-gone-${crypto.randomUUID()}`;
    await env.DB.prepare("INSERT INTO usage_kept (key_id, start, through, requests, tokens) VALUES (?1, ?2, ?3, 7, 70)")
      .bind(gone, starts(now + HOUR_MS)[0], liveFrom(now + HOUR_MS))
      .run();
    expect(await publishedDays(now + 5 * HOUR_MS)).toEqual(inDay(now + 5 * HOUR_MS).map((n) => n + 1500));
    expect(await env.DB.prepare("SELECT COUNT(*) AS n FROM usage_kept WHERE key_id = ?1").bind(gone).first("n")).toBe(0);
    await env.DB.prepare("UPDATE meta SET value = 0 WHERE name = 'usage_published_at'").run();
    await env.DB.prepare("UPDATE settings SET time_zone_since = ?1").bind(zoneSince).run();
  });

  it("counts a client key's day from its hours on the day the pool's time zone changed, and from its day bucket once a day began in the new zone", async () => {
    const saved = await env.DB.prepare("SELECT value, updated_at, time_zone_since FROM settings WHERE id = 1").first<{
      value: string;
      updated_at: number;
      time_zone_since: number;
    }>();
    const setZoneSince = (since: number) =>
      env.DB.prepare(`INSERT INTO settings (id, value, updated_at, time_zone_since) VALUES (1, ?1, ?2, ?2) ON CONFLICT (id) DO UPDATE SET time_zone_since = ?2`)
        .bind(JSON.stringify(defaultSettings), since)
        .run();
    // The pool counted its days in UTC until 18:00 UTC on 20 November, then in `zone`. A client sent an attempt every
    // 7 minutes and 13 seconds for two days up to `now`, each folded in the zone in force when it was.
    const changedAt = Date.UTC(2026, 10, 20, 18, 0, 0);
    const cases = [
      // Pacific: at 22:00 UTC its day began at 08:00 UTC, ten hours of it in a UTC day bucket.
      { zone: "America/Los_Angeles", now: Date.UTC(2026, 10, 20, 22, 0, 0) },
      // India (UTC+5:30): at 18:20 UTC its day began at 18:30 UTC the day before, off the hour.
      { zone: "Asia/Kolkata", now: Date.UTC(2026, 10, 20, 18, 20, 0) },
    ];
    await setZoneSince(changedAt);
    const foldUpTo = async (client: string, zone: string, now: number) => {
      const sent = Array.from({ length: 400 }, (_, i) => ({ ts: now - 1_000 - i * 433_000, tokens: 10 + (i % 7) }));
      const events = sent.map(({ ts, tokens }) => attempt(client, { ts, totalTokens: tokens }));
      for (const inZone of [false, true]) {
        const part = events.filter((e) => e.ts >= changedAt === inZone);
        for (let i = 0; i < part.length; i += 250)
          await ingestBatch(env.DB, toBatchRows(part.slice(i, i + 250), inZone ? zone : "UTC", new PriceBook([])), [], []);
      }
      return sent;
    };
    const expectCounted = async (client: string, zone: string, now: number, sent: { ts: number; tokens: number }[]) => {
      const [month, today] = [monthStart(now, zone), dayStart(now, zone)];
      const day = sent.filter((a) => a.ts >= today);
      const inMonth = sent.filter((a) => a.ts >= month);
      expect(await readClientDays([env.DB], client, month, today), `${zone} at ${new Date(now).toISOString()}`).toMatchObject({
        day_requests: day.length,
        day_tokens: day.reduce((n, a) => n + a.tokens, 0),
        month_tokens: inMonth.reduce((n, a) => n + a.tokens, 0),
        last_at: Math.max(...sent.map((a) => a.ts)),
      });
      return day.length;
    };
    const dayBucket = (client: string, today: number) =>
      env.DB.prepare("SELECT COALESCE(SUM(requests), 0) AS n FROM rollup_client_day WHERE client_key_id = ?1 AND bucket >= ?2")
        .bind(client, today)
        .first<number>("n");
    for (const { zone, now } of cases) {
      const client = `zone-client-${crypto.randomUUID()}`;
      const sent = await foldUpTo(client, zone, now);
      const inDay = await expectCounted(client, zone, now, sent);
      // Today's day bucket holds only what was folded after the change: the day was summed from hours.
      expect(await dayBucket(client, dayStart(now, zone))).toBeLessThan(inDay);
      // With the minute buckets of the day's first hour past retention (they may be pruned), that hour is counted
      // whole: more than the day, never less. A zone on the hour has no such minutes.
      const today = dayStart(now, zone);
      const counted = await readClientDays([env.DB], client, monthStart(now, zone), today, now);
      expect(counted?.day_requests, zone).toBe(sent.filter((a) => a.ts >= Math.floor(today / 3_600_000) * 3_600_000).length);
      if (today % 3_600_000 !== 0) expect(counted?.day_requests, zone).toBeGreaterThan(inDay);
    }
    // Two days on, a day that began in the new zone is its day bucket (hours changed behind the fold's back are not read).
    const later = Date.UTC(2026, 10, 22, 20, 0, 0);
    const client = `zone-client-${crypto.randomUUID()}`;
    const sent = await foldUpTo(client, "America/Los_Angeles", later);
    await env.DB.prepare(`UPDATE rollup_hour SET requests = requests + 1000 WHERE key_id = '*' AND client_key_id = ?1 AND bucket >= ?2`)
      .bind(client, dayStart(later, "America/Los_Angeles"))
      .run();
    expect(await expectCounted(client, "America/Los_Angeles", later, sent)).toBe(await dayBucket(client, dayStart(later, "America/Los_Angeles")));
    await env.DB.prepare("UPDATE settings SET value = ?1, updated_at = ?2, time_zone_since = ?3 WHERE id = 1")
      .bind(saved?.value ?? JSON.stringify(defaultSettings), saved?.updated_at ?? 0, saved?.time_zone_since ?? 0)
      .run();
  });

  it("counts what D1 spent on its folds and the events they committed, stored by the next fold's transaction", async () => {
    const meta = async () =>
      new Map(
        (await env.DB.prepare("SELECT name, value FROM meta WHERE substr(name, 1, 3) = 'd1_'").all<{ name: string; value: number }>()).results.map((r) => [
          r.name,
          r.value,
        ]),
      );
    const batch = (n: number) => Array.from({ length: n }, () => attempt(`d1-work-${crypto.randomUUID()}`));
    // A first batch stores what earlier work left pending; its own counts wait for the next fold.
    await deliver(batch(3));
    const before = await meta();
    await deliver(batch(400));
    const between = await meta();
    // Two batches folding at once in this isolate: what is pending is stored by one of them, not by both.
    await Promise.all([deliver(batch(100)), deliver(batch(100))]);
    await deliver(batch(5));
    const after = await meta();
    const delta = (a: Map<string, number>, b: Map<string, number>, name: string) => (b.get(name) ?? 0) - (a.get(name) ?? 0);
    expect(delta(before, between, "d1_fold_events")).toBe(3);
    expect(delta(between, after, "d1_fold_events")).toBe(400 + 2 * 100);
    // The events' ids in the dedupe window (a row each: keyed by time and id, it has no index of its own), their attempts
    // and their requests in the log.
    expect(delta(between, after, "d1_fold_dedupe_rows_written")).toBe(600);
    expect(delta(between, after, "d1_fold_request_log_rows_written")).toBeGreaterThanOrEqual(2 * 600);
    expect(delta(between, after, "d1_fold_rollups_rows_written")).toBeGreaterThan(0);
    // Time as the runtime's clock gives it, whole milliseconds locally: a short statement may count 0, but the statements
    // run back to back, so their sum misses about a millisecond of the transaction's, which for 400 events takes several.
    const parts = ["dedupe", "stage", "rollups", "request_log", "key_state", "other"];
    expect(parts.reduce((sum, part) => sum + delta(between, after, `d1_fold_${part}_us`), 0)).toBeGreaterThan(0);
  });

  it("publishes the pool's usage less often when its publish takes long: as much as keeps it to its share of the time, and at least every 30 s", async () => {
    const key = `usage-spaced-${crypto.randomUUID()}`;
    await addKeys([key, { rpd: 1_000 }]);
    const version = async () => parsePoolUsage((await env.SNAPSHOT.get(USAGE_KV_KEY, "text")) ?? "")?.version ?? 0;
    const setMeta = (name: string, value: number) => env.DB.prepare("UPDATE meta SET value = ?1 WHERE name = ?2").bind(value, name).run();
    const publishMs = async () => (await env.DB.prepare("SELECT value FROM meta WHERE name = 'usage_publish_ms'").first<{ value: number }>())?.value;
    // The last publish took 2 s: with USAGE_SPACING's share of 0.4, the next may come 5 s after it.
    await setMeta("usage_publish_ms", 2_000);
    // (Margins of seconds either side: the batch's own work comes between these writes and its claim.)
    await setMeta("usage_published_at", Date.now() - 1_500);
    const before = await version();
    await deliver([attempt("usage-client", { keyId: key })]);
    expect(await version()).toBe(before);
    await setMeta("usage_published_at", Date.now() - 5_100);
    await deliver([attempt("usage-client", { keyId: key })]);
    const after = await version();
    expect(after).toBeGreaterThan(before);
    // It records what this publish took (a local one: well under the 2 s set above).
    expect(await publishMs()).toBeLessThan(2_000);
    // However long the last one took, the usage is published within 30 s.
    await setMeta("usage_publish_ms", 3_600_000);
    await setMeta("usage_published_at", Date.now() - 25_000);
    await deliver([attempt("usage-client", { keyId: key })]);
    expect(await version()).toBe(after);
    await setMeta("usage_published_at", Date.now() - 30_100);
    await deliver([attempt("usage-client", { keyId: key })]);
    expect(await version()).toBeGreaterThan(after);
  });

  it("publishes a newer snapshot after an admin event, with the version in its metadata", async () => {
    const before = await env.SNAPSHOT.getWithMetadata<{ version: number }>(SNAPSHOT_KV_KEY);
    const event: AdminEvent = {
      v: 1,
      type: "admin",
      id: crypto.randomUUID(),
      ts: Date.now(),
      actor: "test",
      action: "snapshot.refresh",
      target: null,
      detail: null,
    };
    await deliver([event]);
    const after = await env.SNAPSHOT.getWithMetadata<{ version: number }, { version: number }>(SNAPSHOT_KV_KEY, "json");
    expect(after.metadata?.version).toBeGreaterThan(before.metadata?.version ?? 0);
    expect(after.value?.version).toBe(after.metadata?.version);
    const audit = await env.DB.prepare("SELECT actor, action FROM audit_log WHERE id = ?1").bind(event.id).first();
    expect(audit).toEqual({ actor: "test", action: "snapshot.refresh" });
  });

  it("retries the whole batch and commits nothing when D1 fails mid-batch", async () => {
    const client = crypto.randomUUID();
    const events = [attempt(client), attempt(client)];
    // Every transaction adds to the dedupe window, and this one fails there (both ways of folding are tried).
    await env.DB.exec("CREATE TRIGGER fail_dedupe BEFORE INSERT ON seen_events BEGIN SELECT RAISE(ABORT, 'injected failure'); END");
    let result;
    try {
      result = await deliver(events);
    } finally {
      await env.DB.exec("DROP TRIGGER fail_dedupe");
    }
    expect(result.retryBatch.retry).toBe(true);
    expect(result.ackAll).toBe(false);
    const [minute] = await totals(client);
    expect(minute).toMatchObject({ requests: null });
    // The scratch table rolled back with the rest: empty, so the retry counts each attempt once.
    const staged = () => env.DB.prepare("SELECT COUNT(*) AS n FROM ingest_stage").first<{ n: number }>();
    expect(await staged()).toEqual({ n: 0 });
    await deliver(events);
    const [after] = await totals(client);
    expect(after).toMatchObject({ requests: 2 });
    expect(await staged()).toEqual({ n: 0 });
  });
});
