import { applyD1Migrations } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { beforeAll, describe, expect, it } from "vitest";
import {
  DAY_MS,
  HOUR_MS,
  MINUTE_MS,
  PriceBook,
  dayStart,
  defaultSettings,
  leastRetention,
  minuteStart,
  monthStart,
  type AttemptEvent,
  type Settings,
} from "../../schema";
import type { FoldDatabases } from "../../storage/fold-databases";
import { breakdownRows, bucketTotals, readClientDays, rollingTotals, seriesRows, spendTotals, type BreakdownBy } from "../../storage/rollups";
import type { StatsFilters } from "../../storage/rollup-sums";
import { loadKeyRows } from "../../storage/keys";
import { pruneProjections } from "../../scheduler/storage/retention";
import { publishUsage } from "../../stats-consumer/storage/usage-store";
import { readClientQuotaRows } from "../../stats-consumer/storage/alert-inputs";
import { foldEvents } from "../../stats-consumer/storage/ingest-db";
import { bucketStarts } from "../../gateway/logic/stats";
import { attemptEvent } from "../fixtures/events";

// Two pools alike, one of them pruned at the shortest retention the settings allow; every read the pool makes of its
// rollups — its limits, its client keys' quotas, the dashboard's pages — must answer alike from both.
const KEPT = () => env.RETAIN_KEPT;
const PRUNED = () => env.RETAIN_PRUNED;

/**
 * 18:29:30 UTC on Saturday 31 October 2026: in London (the pool's zone) a month of 31 days and an hour (summer time
 * ended on the 25th) that began 30 days and 19½ hours ago; in Kolkata (one key's day) a day that began 23 hours and 59½
 * minutes ago, on the half hour, so it is counted from minute buckets of its first hour — which the usage publish keeps
 * in its sums an hour or two in, long before retention prunes them.
 */
const NOW = Date.UTC(2026, 9, 31, 18, 29, 30);
const KOLKATA_DAY = Date.UTC(2026, 9, 30, 18, 30);
const ZONE = "Europe/London";
const settings: Settings = { ...defaultSettings, timeZone: ZONE, retention: leastRetention };

const KEYS = {
  "k-pool": {},
  "k-kolkata": { rpd: 10_000, tpd: 1_000_000, day: { reset: "local", hour: 0, timeZone: "Asia/Kolkata" } },
  "k-rolling": { rpm: 100, rpd: 10_000, day: { reset: "rolling" } },
} as const;
const CLIENTS = ["c-quota", "c-free"] as const;

/** Traffic over 40 days: every key and client key every 3 hours, and every 5 minutes over the last 27 hours. */
function traffic(): AttemptEvent[] {
  const events: AttemptEvent[] = [];
  const keys = Object.keys(KEYS);
  let n = 0;
  const at = (ts: number) => {
    for (const keyId of keys) {
      n++;
      events.push(
        attemptEvent({
          ts,
          keyId,
          upstreamId: "u-1",
          clientKeyId: CLIENTS[n % 2],
          model: `m-${n % 2}`,
          promptTokens: 10 + (n % 7),
          completionTokens: 5,
          totalTokens: 15 + (n % 7),
          outcome: n % 11 === 0 ? "upstream_error" : "ok",
          status: n % 11 === 0 ? 502 : 200,
        }),
      );
    }
  };
  for (let ts = NOW - 40 * DAY_MS; ts < NOW - 27 * HOUR_MS; ts += 3 * HOUR_MS) at(ts);
  for (let ts = NOW - 27 * HOUR_MS; ts <= NOW; ts += 5 * MINUTE_MS) at(ts);
  return events;
}

async function configure(db: D1Database): Promise<void> {
  await applyD1Migrations(db, env.TEST_MIGRATIONS);
  await db.batch([
    // The zone set long ago: every day bucket of the range was folded in it.
    db.prepare("INSERT INTO settings (id, value, updated_at, time_zone_since) VALUES (1, ?1, 0, 0)").bind(JSON.stringify(settings)),
    db.prepare("INSERT INTO upstreams (id, name, base_url, created_at, updated_at) VALUES ('u-1', 'upstream', 'http://u', 0, 0)"),
    ...Object.entries(KEYS).map(([id, limits]) =>
      db
        .prepare(
          "INSERT INTO keys (id, upstream_id, secret_enc, fingerprint, masked, limits, created_at, updated_at) VALUES (?1, 'u-1', 'x', ?1, ?1, ?2, 0, 0)",
        )
        .bind(id, JSON.stringify(limits)),
    ),
    db.prepare(
      "INSERT INTO client_keys (id, name, hash, masked, rpd_limit, monthly_token_limit, created_at, updated_at) VALUES ('c-quota', 'quota', 'h1', 'kp-…', 100000, 100000000, 0, 0)",
    ),
    db.prepare("INSERT INTO client_keys (id, name, hash, masked, created_at, updated_at) VALUES ('c-free', 'free', 'h2', 'kp-…', 0, 0)"),
  ]);
  const events = traffic();
  for (let i = 0; i < events.length; i += 250) await foldEvents([db], events.slice(i, i + 250), settings, new PriceBook([]));
}

/** The pool's usage as a publish at `at` writes it. */
async function publishAt(db: D1Database, at: number): Promise<{ keyIds: string[]; keyCounts: number[]; clients: Record<string, unknown> }> {
  let written = "";
  const kv = { put: async (_key: string, value: string) => void (written = value) } as unknown as KVNamespace;
  const queue = { send: async () => {} } as unknown as Queue;
  expect(await publishUsage([db], kv, queue, at)).not.toBeNull();
  return JSON.parse(written) as { keyIds: string[]; keyCounts: number[]; clients: Record<string, unknown> };
}

/** A key's requests in its day so far, as a publish counted them. */
const dayRequests = (usage: { keyIds: string[]; keyCounts: number[] }, keyId: string) => usage.keyCounts[usage.keyIds.indexOf(keyId) * 8 + 5];

/** k-kolkata's attempts from `from` on. */
const kolkataSince = (from: number) => traffic().filter((e) => e.keyId === "k-kolkata" && e.ts >= from).length;

/** Everything the pool reads of its rollups at NOW, as one object to compare. */
async function reads(db: D1Database): Promise<Record<string, unknown>> {
  const dbs: FoldDatabases = [db];
  const today = dayStart(NOW, ZONE);
  const month = monthStart(NOW, ZONE);
  const out: Record<string, unknown> = {};
  // The pool's usage against its keys' and client keys' limits, as the gateway takes it.
  out.usage = await publishAt(db, NOW);
  // A client key's quota status and the quota alerts; the key list's requests today.
  for (const client of CLIENTS) out[`client ${client}`] = await readClientDays(dbs, client, month, today);
  out.quotas = (await readClientQuotaRows(dbs, NOW)).rows;
  out.keyList = (await loadKeyRows(dbs, today, NOW - HOUR_MS)).map((k) => [k.id, k.requestsToday, k.tokensToday, k.successesLastHour, k.judgedLastHour]);
  // The summary.
  out.summary = [
    await bucketTotals(dbs, "minute", minuteStart(NOW) - MINUTE_MS, minuteStart(NOW)),
    await bucketTotals(dbs, "day", today, today),
    await rollingTotals(dbs, minuteStart(NOW) - DAY_MS + MINUTE_MS, NOW + 1),
    await spendTotals(dbs, month, today),
  ];
  // The Overview's three ranges, a key's page (its last hour by minute and 48 hours by hour), a client key's (30 days).
  const pages: [bucket: "minute" | "hour" | "day", count: number, filters: StatsFilters, by: BreakdownBy[]][] = [
    ["minute", 60, {}, ["model", "upstream", "client", "key"]],
    ["hour", 48, {}, ["model", "upstream", "client", "key"]],
    ["day", 30, {}, ["model", "upstream", "client", "key"]],
    ["minute", 60, { keyId: "k-kolkata" }, []],
    ["hour", 48, { keyId: "k-kolkata" }, []],
    ["day", 30, { clientKeyId: "c-quota" }, ["model"]],
  ];
  for (const [bucket, count, filters, by] of pages) {
    const starts = bucketStarts(bucket, count, NOW, ZONE);
    const [from, to] = [starts[0]!, starts.at(-1)!];
    const name = `${bucket} ${count} ${JSON.stringify(filters)}`;
    out[`series ${name}`] = await seriesRows(dbs, bucket, from, to, filters);
    for (const b of by) out[`by ${b} ${name}`] = await breakdownRows(dbs, bucket, from, to, b, filters, 100);
  }
  return out;
}

describe("the shortest retention the settings allow", () => {
  beforeAll(async () => {
    for (const db of [KEPT(), PRUNED()]) {
      await configure(db);
      // The usage published every two hours since Kolkata's day was two hours old, as a pool publishes it each second.
      for (let at = KOLKATA_DAY + 2 * HOUR_MS + 10 * MINUTE_MS; at < NOW - 30 * MINUTE_MS; at += 2 * HOUR_MS) await publishAt(db, at);
    }
  }, 60_000);

  it("keeps every rollup row the pool reads: its limits, its quotas and the dashboard's pages answer as before pruning", async () => {
    expect(leastRetention).toMatchObject({ minuteRollupHours: 4, hourRollupDays: 2, dayRollupDays: 32 });
    const deleted = await pruneProjections([PRUNED()], settings, NOW);
    // Retention did cut every rollup table: rows older than each horizon were there.
    for (const table of [
      "rollup_minute",
      "rollup_hour",
      "rollup_day",
      "rollup_client_day",
      "rollup_upstream_minute",
      "rollup_upstream_hour",
      "rollup_pool_hour",
    ])
      expect(deleted[table], table).toBeGreaterThan(0);
    const before = await reads(KEPT());
    const after = await reads(PRUNED());
    // The reads are not empty: the key counted from its first hour's minutes has a day, the quota a month.
    const usage = before.usage as { keyIds: string[]; clients: Record<string, unknown> };
    expect([...usage.keyIds].sort()).toEqual(["k-kolkata", "k-rolling"]);
    expect(Object.keys(usage.clients)).toEqual(["c-quota"]);
    expect((before["client c-quota"] as { month_tokens: number }).month_tokens).toBeGreaterThan(0);
    expect((before["series day 30 {}"] as unknown[]).length).toBeGreaterThan(25);
    for (const [read, value] of Object.entries(before)) expect(after[read], read).toEqual(value);
    // Kolkata's day exactly, from the first hour's minutes the publish kept (those minutes are pruned now).
    expect(dayRequests(before.usage as never, "k-kolkata")).toBe(kolkataSince(KOLKATA_DAY));
  });

  it("counts a day's first hour whole once its minutes may be pruned and the kept sums are gone: more, never less", async () => {
    // Three hours without a publish drop the kept sums; the next publish sums the day anew.
    const later = NOW + 10_000;
    const lapse = async (db: D1Database) => {
      await db.prepare("DELETE FROM usage_kept").run();
      return publishAt(db, later);
    };
    const kept = await lapse(KEPT());
    const pruned = await lapse(PRUNED());
    // Retention's horizon, not what a database still holds, decides: both count from 18:00 UTC, the hour Kolkata's day began in.
    expect(dayRequests(pruned, "k-kolkata")).toBe(kolkataSince(KOLKATA_DAY - 30 * MINUTE_MS));
    expect(dayRequests(pruned, "k-kolkata")).toBeGreaterThan(kolkataSince(KOLKATA_DAY));
    expect(pruned).toEqual(kept);
    // A day begun on the hour is exact still: the rolling day's sum is its hours'.
    expect(dayRequests(pruned, "k-rolling")).toBe(traffic().filter((e) => e.keyId === "k-rolling" && e.ts >= Date.UTC(2026, 9, 30, 18)).length);
  });
});
