import { applyD1Migrations } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { beforeAll, describe, expect, it } from "vitest";
import {
  DAY_MS,
  EVENTS_PREFIX,
  MINUTE_MS,
  PriceBook,
  archiveKey,
  dayStart,
  defaultSettings,
  foldShardOf,
  rollupRowsFor,
  type AdminEvent,
  type AttemptEvent,
  type KeypoolEvent,
  type ProbeEvent,
} from "../../schema";
import type { FoldDatabases } from "../../storage/fold-databases";
import { breakdownRows, bucketTotals, readClientDays, rollingTotals, seriesRows, spendTotals, type BreakdownBy } from "../../storage/rollups";
import type { StatsFilters } from "../../storage/rollup-sums";
import { findRequest, listRequests, type RequestFilters } from "../../storage/request-log";
import type { RequestRow } from "../../storage/request-log-rows";
import { pruneProjections } from "../../scheduler/storage/retention";
import { readMetricTotals } from "../../storage/metrics";
import { publishUsage } from "../../stats-consumer/storage/usage-store";
import { keyLabelsAcross, loadKeyLimitRows, loadKeyRows, readProbeCandidates, selectKeyLabels } from "../../storage/keys";
import { readKeyFacts, readPoolRows, readStateRows } from "../../stats-consumer/storage/snapshot-store";
import { readClientQuotaRows } from "../../stats-consumer/storage/alert-inputs";
import { rebuild } from "../../stats-consumer/replay";
import { appendToArchive } from "../../storage/archive";
import { foldEvents } from "../../stats-consumer/storage/ingest-db";
import { attemptEvent } from "../fixtures/events";

const WHOLE = () => env.FOLD_WHOLE;
const SHARDS = (): FoldDatabases => [env.FOLD_0, env.FOLD_1, env.FOLD_2];
const prices = new PriceBook([]);

/** Tables whose rows add up over the databases (a key's rows are in one, the client keys', upstreams' and pool's in each). */
const ADDITIVE = /^(rollup_|metric_total$)/;
/** Tables where each row is in exactly one database, and which: its key's, its request's, or the first. */
const PARTITIONED: Record<string, (row: Row) => number> = {
  key_health: (row) => foldShardOf(String(row.key_id), 3),
  key_capacity: (row) => foldShardOf(String(row.key_id), 3),
  request_log: (row) => foldShardOf(String(row.request_id), 3),
  request_attempts: (row) => foldShardOf(String(row.request_id), 3),
  audit_log: () => 0,
  // The sums of past hours the usage publish keeps, by key.
  usage_kept: (row) => foldShardOf(String(row.key_id), 3),
};
/** The dedupe window: an event's id is in every database that folded a part of it. */
const SEEN = "seen_events";
/** Not projections: the databases' own figures (D1's time, the newest event folded), migrations, and the configuration reads take names from. */
const NOT_PROJECTIONS = new Set(["meta", "fold_layout", "d1_migrations", "upstreams", "keys", "client_keys"]);

type Row = Record<string, unknown>;

async function tables(db: D1Database): Promise<string[]> {
  const { results } = await db
    .prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' AND name NOT LIKE '_cf_%' AND name NOT LIKE 'shadow_%'")
    .all<{ name: string }>();
  return results.map((r) => r.name).filter((n) => !NOT_PROJECTIONS.has(n));
}

async function rows(db: D1Database, table: string): Promise<Row[]> {
  return (await db.prepare(`SELECT * FROM ${table}`).all<Row>()).results;
}

async function primaryKey(db: D1Database, table: string): Promise<string[]> {
  const { results } = await db.prepare(`SELECT name, pk FROM pragma_table_info('${table}') WHERE pk > 0 ORDER BY pk`).all<{ name: string }>();
  return results.map((r) => r.name);
}

const sorted = (list: Row[], pk: string[]) => [...list].sort((a, b) => (JSON.stringify(pk.map((c) => a[c])) < JSON.stringify(pk.map((c) => b[c])) ? -1 : 1));

/** Rows of an additive table from several databases, as a reader sums them: maxima kept, counts and JSON bucket counts added. */
function summed(parts: Row[][], pk: string[]): Row[] {
  const out = new Map<string, Row>();
  for (const row of parts.flat()) {
    const id = JSON.stringify(pk.map((c) => row[c]));
    const into = out.get(id);
    if (!into) {
      out.set(id, { ...row });
      continue;
    }
    for (const [column, value] of Object.entries(row)) {
      if (pk.includes(column)) continue;
      if (column.endsWith("_max") || column === "last_at") into[column] = Math.max(Number(into[column]), Number(value));
      else if (typeof value === "number") into[column] = Number(into[column]) + value;
      else if (typeof value === "string" && value.startsWith("[")) {
        const a = JSON.parse(String(into[column])) as number[];
        const b = JSON.parse(value) as number[];
        into[column] = JSON.stringify(Array.from({ length: Math.max(a.length, b.length) }, (_, i) => (a[i] ?? 0) + (b[i] ?? 0)));
      } else expect(value, `${column} of ${id}`).toBe(into[column]);
    }
  }
  return [...out.values()];
}

/** Asserts the databases together hold what the one database holds, table by table; returns the tables compared. */
async function expectSameAsWhole(): Promise<string[]> {
  const compared: string[] = [];
  for (const table of await tables(WHOLE())) {
    const whole = await rows(WHOLE(), table);
    const parts = await Promise.all(SHARDS().map((db) => rows(db, table)));
    const pk = await primaryKey(WHOLE(), table);
    if (whole.length === 0 && parts.every((p) => p.length === 0)) continue;
    compared.push(table);
    if (ADDITIVE.test(table)) expect(sorted(summed(parts, pk), pk), table).toEqual(sorted(whole, pk));
    else if (table in PARTITIONED) {
      expect(sorted(parts.flat(), pk), table).toEqual(sorted(whole, pk));
      parts.forEach((part, shard) =>
        expect(
          part.filter((row) => PARTITIONED[table]!(row) !== shard),
          `${table} rows out of their database`,
        ).toEqual([]),
      );
    } else if (table === SEEN) {
      expect(new Set(parts.flat().map((r) => r.id)), table).toEqual(new Set(whole.map((r) => r.id)));
    } else throw new Error(`the fold wrote ${table}, which this test does not know how to compare`);
  }
  return compared;
}

/** A batch over 12 keys: requests that fail over from one key to another, some the request log leaves out, probes and an admin event. */
function traffic(): KeypoolEvent[] {
  const now = Date.now();
  const keys = Array.from({ length: 12 }, (_, i) => `k-${String(i).padStart(2, "0")}`);
  const events: KeypoolEvent[] = [];
  for (let i = 0; i < 150; i++) {
    const ts = now - 2 * 3_600_000 + i * MINUTE_MS - (i % 7) * 1_000;
    const requestId = crypto.randomUUID();
    const shared = {
      requestId,
      upstreamId: `u-${i % 2}`,
      clientKeyId: `c-${i % 3}`,
      model: `m-${i % 3}`,
      logged: i % 5 !== 0,
      latencyMs: 100 + (i % 13) * 37,
      ttfbMs: i % 4 === 0 ? null : 20 + i,
    };
    if (i % 3 === 0) {
      events.push(
        attemptEvent({
          ...shared,
          ts,
          attempt: 1,
          final: false,
          keyId: keys[i % 12],
          status: 429,
          outcome: "rate_limited",
          totalTokens: 0,
          promptTokens: 0,
          completionTokens: 0,
          error: "slow down",
          rateLimit: { requests: { limit: 60, remaining: 0, resetMs: 20_000 + i }, tokens: null },
        }),
      );
    }
    events.push(
      attemptEvent({
        ...shared,
        ts: ts + 300,
        attempt: i % 3 === 0 ? 2 : 1,
        keyId: keys[(i * 5 + 1) % 12],
        promptTokens: 10 + i,
        completionTokens: 3 + (i % 9),
        totalTokens: 13 + i + (i % 9),
        rateLimit: { requests: { limit: 60, remaining: 30 - (i % 30), resetMs: 1_000 }, tokens: { limit: 100_000, remaining: 90_000 - i, resetMs: 500 } },
      }),
    );
  }
  for (const [i, key] of keys.slice(0, 4).entries()) {
    const probe: ProbeEvent = {
      v: 1,
      type: "probe",
      id: crypto.randomUUID(),
      ts: now - i * 1_000,
      keyId: key,
      kind: "balance",
      result: i === 3 ? "no_balance" : "ok",
      balance: i === 3 ? 0 : 10 + i,
      detail: null,
    };
    events.push(probe);
  }
  const admin: AdminEvent = {
    v: 1,
    type: "admin",
    id: crypto.randomUUID(),
    ts: now,
    actor: "admin",
    action: "key.create",
    target: "k-00",
    detail: { name: "first" },
  };
  events.push(admin);
  return events;
}

/** The published usage by key (each key's counts with its day window, not its index) and by client key, whatever the keys' order. */
function usageByKey(text: string): { keys: Record<string, unknown[]>; clients: Record<string, unknown>; rest: unknown[] } {
  const u = JSON.parse(text) as {
    keyIds: string[];
    keyCounts: number[];
    dayWindows: unknown[];
    keyReadings: unknown;
    clients: Record<string, unknown>;
  } & Record<string, unknown>;
  const keys = Object.fromEntries(
    u.keyIds.map((id, i) => {
      const c = u.keyCounts.slice(i * 8, i * 8 + 8);
      return [id, [...c.slice(0, 4), u.dayWindows[c[4]!], ...c.slice(5)]];
    }),
  );
  return { keys, clients: u.clients, rest: [u.version, u.generatedAt, u.minuteStart, u.keyReadings] };
}

/** A database whose transactions fail, as D1 may when it is overloaded or restarted. */
function failing(db: D1Database): D1Database {
  return new Proxy(db, {
    get(target, property) {
      if (property === "batch") return () => Promise.reject(new Error("D1 is unavailable"));
      const value = Reflect.get(target, property) as unknown;
      return typeof value === "function" ? (value as (...a: unknown[]) => unknown).bind(target) : value;
    },
  });
}

describe("the fold over several databases by key", () => {
  /** The batch the first test folds, which the later ones read, rebuild and prune. */
  let batch: KeypoolEvent[] = [];
  beforeAll(async () => {
    for (const db of [WHOLE(), ...SHARDS()]) {
      await applyD1Migrations(db, env.TEST_MIGRATIONS);
      for (const table of await tables(db)) await db.prepare(`DELETE FROM ${table}`).run();
    }
  });

  it("holds in its databases together exactly what one database holds, also after a failed and a repeated delivery", async () => {
    const events = traffic();
    batch = events;
    // The batch does hold requests whose attempts are on keys of different databases, and keys in every one.
    const spread = events.filter(
      (e) =>
        e.type === "attempt" &&
        e.attempt === 2 &&
        foldShardOf(e.keyId, 3) !==
          foldShardOf((events.find((f) => f.type === "attempt" && f.requestId === e.requestId && f.attempt === 1) as { keyId: string }).keyId, 3),
    );
    expect(spread.length).toBeGreaterThan(5);
    // The keys in the second and third; the first keeps the configuration and the audit log.
    expect(new Set(events.flatMap((e) => (e.type === "attempt" ? [foldShardOf(e.keyId, 3)] : [])))).toEqual(new Set([1, 2]));

    await foldEvents([WHOLE()], events, defaultSettings, prices);
    // One database of three down: the batch fails (and is retried) — the other two have committed their parts.
    const [first, second, third] = SHARDS() as [D1Database, D1Database, D1Database];
    await expect(foldEvents([first, failing(second), third], events, defaultSettings, prices)).rejects.toThrow("D1 is unavailable");
    expect((await rows(third, "request_attempts")).length).toBeGreaterThan(0);
    expect((await rows(first, "audit_log")).length).toBeGreaterThan(0);
    expect(await rows(second, "request_attempts")).toEqual([]);
    // The retry: the two that committed see the ids in their windows and change nothing; the third folds its part.
    await foldEvents(SHARDS(), events, defaultSettings, prices);
    const compared = await expectSameAsWhole();
    expect(compared).toEqual(
      expect.arrayContaining([
        "rollup_minute",
        "rollup_hour",
        "rollup_day",
        "rollup_upstream_minute",
        "rollup_pool_hour",
        "rollup_client_day",
        "metric_total",
        "key_health",
        "key_capacity",
        "request_log",
        "request_attempts",
        "audit_log",
        SEEN,
      ]),
    );
    // A request whose attempts went to two databases' keys is one row, in its own database, with both attempts.
    const request = spread.find((e) => e.type === "attempt" && e.logged) as AttemptEvent;
    const home = SHARDS()[foldShardOf(request.requestId, 3)]!;
    const row = await home.prepare("SELECT attempts, outcome FROM request_log WHERE request_id = ?1").bind(request.requestId).first();
    expect(row).toEqual({ attempts: 2, outcome: "ok" });

    // Delivered once more whole: nothing changes anywhere.
    await foldEvents(SHARDS(), events, defaultSettings, prices);
    await foldEvents([WHOLE()], events, defaultSettings, prices);
    await expectSameAsWhole();
  });

  it("answers the dashboard's reads over the databases as one database answers them", async () => {
    // The configuration (names, and which upstream a key is in) is in the first database, as in `DB`: two upstreams, the
    // first 11 keys (k-11 deleted), two of the three client keys. The fold is the first test's.
    const now = Date.now();
    for (const db of [WHOLE(), SHARDS()[0]!]) {
      await db.batch([
        ...["u-0", "u-1"].map((id) =>
          db.prepare("INSERT INTO upstreams (id, name, base_url, created_at, updated_at) VALUES (?1, ?2, 'http://u', 0, 0)").bind(id, `upstream ${id}`),
        ),
        ...Array.from({ length: 11 }, (_, i) =>
          db
            .prepare("INSERT INTO keys (id, upstream_id, secret_enc, fingerprint, masked, created_at, updated_at) VALUES (?1, ?2, 'x', ?1, ?3, 0, 0)")
            .bind(`k-${String(i).padStart(2, "0")}`, `u-${i % 2}`, `sk-…${i}`),
        ),
        ...["c-0", "c-1"].map((id) =>
          db.prepare("INSERT INTO client_keys (id, name, hash, masked, created_at, updated_at) VALUES (?1, ?2, ?1, 'kp-…', 0, 0)").bind(id, `client ${id}`),
        ),
      ]);
    }
    const one: FoldDatabases = [WHOLE()];
    const split = SHARDS() as unknown as FoldDatabases;
    const from = now - DAY_MS;
    for (const bucket of ["minute", "hour", "day"] as const) {
      const totals = await bucketTotals(one, bucket, from, now);
      expect(totals.length).toBeGreaterThan(0);
      expect(await bucketTotals(split, bucket, from, now), bucket).toEqual(totals);
    }
    expect(await rollingTotals(split, from, now + 1)).toEqual(await rollingTotals(one, from, now + 1));
    const today = dayStart(now, "UTC");
    expect(await spendTotals(split, 0, today)).toEqual(await spendTotals(one, 0, today));
    // A client key's day and month, as its quota status reads them.
    for (const client of ["c-0", "c-1", "c-2", "c-none"]) {
      const days = await readClientDays(one, client, 0, today);
      expect(days === null).toBe(client === "c-none");
      expect(await readClientDays(split, client, 0, today), client).toEqual(days);
    }
    // The client keys' quota alerts: each client key with a quota, what it used today and this month.
    for (const db of [WHOLE(), SHARDS()[0]!]) {
      await db.prepare("UPDATE client_keys SET rpd_limit = 5, monthly_budget_micros = 100 WHERE id IN ('c-0', 'c-1')").run();
    }
    const quotas = await readClientQuotaRows(one, now);
    expect(quotas.rows.map((r) => r.id).sort()).toEqual(["c-0", "c-1"]);
    expect(quotas.rows.every((r) => r.used.dayRequests > 0)).toBe(true);
    const splitQuotas = await readClientQuotaRows(split, now);
    expect(splitQuotas.rows.sort((a, b) => (a.id < b.id ? -1 : 1))).toEqual(quotas.rows.sort((a, b) => (a.id < b.id ? -1 : 1)));
    // /metrics's counters: by upstream and model, their histograms added bucket by bucket; the newest event folded.
    const counters = await readMetricTotals(one);
    expect(counters.totals.length).toBeGreaterThan(1);
    const splitCounters = await readMetricTotals(split);
    expect(splitCounters.totals).toEqual(counters.totals);
    expect(splitCounters.newestFoldedTs).toBe(counters.newestFoldedTs);
    // D1's time by database: each database's own, and together the time by work.
    expect(counters.d1.secondsByDatabase).toHaveLength(1);
    expect(splitCounters.d1.secondsByDatabase).toHaveLength(3);
    expect(splitCounters.d1.secondsByDatabase.every((s) => s > 0)).toBe(true);
    const byWork = Object.values(splitCounters.d1.seconds).reduce((a, b) => a + b, 0);
    expect(splitCounters.d1.secondsByDatabase.reduce((a, b) => a + b, 0)).toBeCloseTo(byWork, 9);

    const filters: StatsFilters[] = [
      {},
      { model: "m-1" },
      { keyId: "k-03" },
      { upstreamId: "u-1" },
      { upstreamId: "u-0", model: "m-2" },
      { clientKeyId: "c-2" },
    ];
    let compared = 0;
    for (const f of filters) {
      for (const bucket of ["minute", "hour", "day"] as const) {
        const series = await seriesRows(one, bucket, from, now, f);
        expect(await seriesRows(split, bucket, from, now, f), `${bucket} ${JSON.stringify(f)}`).toEqual(series);
        for (const by of ["model", "key", "client", "upstream"] as BreakdownBy[]) {
          if (rollupRowsFor({ ...f, by }) === null) continue;
          for (const limit of [100, 3]) {
            const rows = await breakdownRows(one, bucket, from, now, by, f, limit);
            expect(await breakdownRows(split, bucket, from, now, by, f, limit), `${by} ${bucket} ${limit} ${JSON.stringify(f)}`).toEqual(rows);
            if (rows.length > 0) compared++;
          }
        }
      }
    }
    expect(compared).toBeGreaterThan(40);
    // Names come from the configuration, a deleted key's and client key's are null, and a key's upstream is the configuration's.
    const byKey = await breakdownRows(split, "day", from, now, "key", {}, 100);
    expect(byKey.find((r) => r.id === "k-03")?.name).toBe("sk-…3");
    expect(byKey.find((r) => r.id === "k-11")?.name).toBeNull();
    const byClient = await breakdownRows(split, "day", from, now, "client", {}, 100);
    expect(byClient.map((r) => [r.id, r.name]).sort()).toEqual([
      ["c-0", "client c-0"],
      ["c-1", "client c-1"],
      ["c-2", null],
    ]);
    const oneKeyByUpstream = await breakdownRows(split, "day", from, now, "upstream", { keyId: "k-03" }, 100);
    expect(oneKeyByUpstream.map((r) => r.id)).toEqual(["u-1"]);
  });

  it("reads keys' state for the snapshot and its alerts over the databases as from one", async () => {
    const one: FoldDatabases = [WHOLE()];
    const split = SHARDS() as unknown as FoldDatabases;
    const now = Date.now();
    const byId = <T extends { id: string }>(rows: T[]) => [...rows].sort((a, b) => (a.id < b.id ? -1 : 1));
    // Every key with its state, for a publish of every key: the keys from the configuration (k-11 deleted), each one's
    // facts and recent misses from its own database.
    const pool = await readPoolRows(one, now);
    expect(pool.rows.keys).toHaveLength(11);
    expect(pool.rows.keys.filter((k) => k.last_ok_ts !== null && k.judged !== null).length).toBeGreaterThan(3);
    expect(byId((await readPoolRows(split, now)).rows.keys)).toEqual(byId(pool.rows.keys));
    // The admin API's key list (all, and one upstream's) and the headroom's limits, and the scheduler's probe candidates.
    const byKeyId = <T extends { id: string } | { keyId: string }>(rows: T[]) =>
      [...rows].sort((a, b) => (("id" in a ? a.id : a.keyId) < ("id" in b ? b.id : b.keyId) ? -1 : 1));
    const today = dayStart(now, "UTC");
    for (const upstream of [undefined, "u-1"]) {
      const list = await loadKeyRows(one, today, now - 3_600_000, upstream);
      expect(list.length).toBe(upstream ? 5 : 11);
      expect(list.filter((k) => k.requestsToday > 0 && k.lastUsedAt > 0 && k.readings.requests !== null).length).toBeGreaterThan(2);
      expect(byKeyId(await loadKeyRows(split, today, now - 3_600_000, upstream)), String(upstream)).toEqual(byKeyId(list));
    }
    expect(byKeyId(await loadKeyLimitRows(split))).toEqual(byKeyId(await loadKeyLimitRows(one)));
    const candidates = await readProbeCandidates(one);
    expect(candidates.filter((k) => k.lastProbeTs > 0)).toHaveLength(4);
    expect(byKeyId(await readProbeCandidates(split))).toEqual(byKeyId(candidates));
    expect(byKeyId(await readProbeCandidates(split, ["k-01", "k-02", "k-11"]))).toEqual(byKeyId(await readProbeCandidates(one, ["k-01", "k-02", "k-11"])));
    // The keys in trouble, for a publish of states: k-05 rate-limited after its last success (put back at the end).
    const k05 = [WHOLE(), SHARDS()[foldShardOf("k-05", 3)]!];
    const before = await WHOLE()
      .prepare("SELECT last_rate_limit_ts, cool_until FROM key_health WHERE key_id = 'k-05'")
      .first<{ last_rate_limit_ts: number; cool_until: number }>();
    const setK05 = (rateLimited: number, coolUntil: number) =>
      Promise.all(
        k05.map((db) => db.prepare("UPDATE key_health SET last_rate_limit_ts = ?1, cool_until = ?2 WHERE key_id = 'k-05'").bind(rateLimited, coolUntil).run()),
      );
    await setK05(now + 3_600_000, now + 7_200_000);
    try {
      const states = (await readStateRows(one, now)).states;
      expect(states.map((s) => s.id)).toContain("k-05");
      expect(byId((await readStateRows(split, now)).states)).toEqual(byId(states));
      // The facts of the keys a batch touched, deleted keys left out.
      const touched = ["k-01", "k-05", "k-11", "k-none"];
      const facts = await readKeyFacts(one, touched);
      expect([...facts.facts.keys()].sort()).toEqual(["k-01", "k-05"]);
      expect((await readKeyFacts(split, touched)).facts).toEqual(facts.facts);
      // What the alerts name: the keys given and those under a balance (the probes read 10 for k-00, 11 and 12 for k-01
      // and k-02, and none left for k-03).
      const labels = (await WHOLE().batch<{ id: string; masked: string; balance: number | null }>(selectKeyLabels(WHOLE(), ["k-05", "k-07"], 11))).flatMap(
        (r) => r.results,
      );
      expect(new Set(labels.map((l) => l.id))).toEqual(new Set(["k-05", "k-07", "k-00", "k-03"]));
      expect(byId(await keyLabelsAcross(split, ["k-05", "k-07"], 11))).toEqual(byId([...new Map(labels.map((l) => [l.id, l])).values()]));
    } finally {
      await setK05(before!.last_rate_limit_ts, before!.cool_until);
    }
  });

  it("publishes the pool's usage from the databases as from one", async () => {
    const now = Date.now();
    // Limits on six keys (one counting a rolling day, whose past hours the publish keeps in each key's database); c-0
    // and c-1 have quotas (the dashboard test's).
    for (const db of [WHOLE(), SHARDS()[0]!]) {
      await db.prepare(`UPDATE keys SET limits = '{"rpm":100,"rpd":1000,"tpd":100000}' WHERE id IN ('k-00', 'k-01', 'k-02', 'k-03', 'k-04')`).run();
      await db.prepare(`UPDATE keys SET limits = '{"rpd":50,"day":{"reset":"rolling"}}' WHERE id = 'k-06'`).run();
    }
    const publish = async (dbs: FoldDatabases) => {
      let written = "";
      const kv = { put: async (_key: string, value: string) => void (written = value) } as unknown as KVNamespace;
      const queue = { send: async () => {} } as unknown as Queue;
      expect(await publishUsage(dbs, kv, queue, now)).not.toBeNull();
      return usageByKey(written);
    };
    const one = await publish([WHOLE()]);
    expect(Object.keys(one.keys).length).toBeGreaterThanOrEqual(6);
    expect(Object.values(one.keys).filter((k) => Number(k[6]) > 0).length).toBeGreaterThan(3);
    expect(Object.keys(one.clients).sort()).toEqual(["c-0", "c-1"]);
    expect(await publish(SHARDS() as unknown as FoldDatabases)).toEqual(one);
  });

  it("reads the request log over the databases as from one: pages, filters, a request", async () => {
    const one: FoldDatabases = [WHOLE()];
    const split = SHARDS() as unknown as FoldDatabases;
    const filters: RequestFilters[] = [{}, { keyId: "k-03" }, { minLatencyMs: 400 }, { clientKeyId: "c-1" }, { upstreamId: "u-0", model: "m-2" }];
    for (const f of filters) {
      // Page by page, newest first, seven at a time, as the Requests page follows its cursor.
      const pages = async (dbs: FoldDatabases) => {
        const seen: RequestRow[] = [];
        let cursor: { startedAt: number; requestId: string } | null = null;
        for (;;) {
          const rows = await listRequests(dbs, f, cursor, 7);
          seen.push(...rows.slice(0, 7));
          if (rows.length <= 7) return seen;
          const last = rows[6]!;
          cursor = { startedAt: Number(last.started_at), requestId: String(last.request_id) };
        }
      };
      const whole = await pages(one);
      expect(whole.length, JSON.stringify(f)).toBeGreaterThan(3);
      expect(await pages(split), JSON.stringify(f)).toEqual(whole);
    }
    // Names as the single database joins them: a deleted key's and client key's are null.
    const all = await listRequests(split, {}, null, 500);
    expect(all.some((r) => r.key_id === "k-11" && r.key_masked === null)).toBe(true);
    expect(all.some((r) => r.client_key_id === "c-2" && r.client_name === null)).toBe(true);
    expect(all.find((r) => r.key_id === "k-03")?.key_masked).toBe("sk-…3");
    // Each request is found in the database its id names, with its attempts.
    for (const r of all.slice(0, 20)) {
      const id = String(r.request_id);
      expect(await findRequest(split, id), id).toEqual(await findRequest(one, id));
    }
    const failedOver = all.find((r) => r.attempts === 2)!;
    expect((await findRequest(split, String(failedOver.request_id)))?.attempts.map((a) => a.attempt)).toEqual([1, 2]);
    expect(await findRequest(split, crypto.randomUUID())).toBeNull();
  });

  it("rebuilds every database from the archive as it holds it, by the same split", async () => {
    // The batch as the consumer archives it, alone in an archive of its own.
    const archive = env.FOLD_ARCHIVE;
    for (const old of (await archive.list()).objects) await archive.delete(old.key);
    await appendToArchive(archive, archiveKey(EVENTS_PREFIX, Date.now(), crypto.randomUUID()), batch, {});
    const replayEnv = { ...env, ARCHIVE: archive } as unknown as ConsumerEnv;
    const params = { jobId: "fold-shards" };
    const whole = await rebuild(replayEnv, params, Date.now(), [WHOLE()]);
    const split = await rebuild(replayEnv, params, Date.now(), SHARDS() as unknown as FoldDatabases);
    expect(whole.identical).toBe(true);
    expect(split.identical, JSON.stringify(split.compared, null, 1).slice(0, 2_000)).toBe(true);
    expect(split.events).toBe(batch.length);
    for (const table of ["rollup_minute", "rollup_client_day", "key_health", "key_capacity", "metric_total", "request_log", "audit_log"]) {
      expect(split.compared[table]?.live, table).toBeGreaterThan(0);
    }
    // A difference in one database is found: a key's health row changed behind the fold's back.
    const changed = SHARDS()[foldShardOf("k-03", 3)]!;
    await changed.prepare("UPDATE key_health SET last_ok_ts = last_ok_ts + 1 WHERE key_id = 'k-03'").run();
    const after = await rebuild(replayEnv, params, Date.now(), SHARDS() as unknown as FoldDatabases);
    expect(after.identical).toBe(false);
    expect(after.compared.key_health).toMatchObject({ onlyLive: 1, onlyRebuilt: 1 });
    await changed.prepare("UPDATE key_health SET last_ok_ts = last_ok_ts - 1 WHERE key_id = 'k-03'").run();
  });

  it("prunes every database past retention, leaving them together equal to one pruned alike", async () => {
    // Two days and an hour after the batch's first events: the minute rollups' first hour is past their 48 hours.
    const now = Date.now() + 47 * 3_600_000;
    const before = await rows(WHOLE(), "rollup_minute");
    const whole = await pruneProjections([WHOLE()], defaultSettings, now);
    const split = await pruneProjections(SHARDS() as unknown as FoldDatabases, defaultSettings, now);
    expect(whole.rollup_minute).toBeGreaterThan(0);
    expect((await rows(WHOLE(), "rollup_minute")).length).toBe(before.length - whole.rollup_minute!);
    // The key rows were in one database each; the client keys', upstreams' and pool's rows in several.
    expect(split.rollup_minute).toBeGreaterThanOrEqual(whole.rollup_minute!);
    expect(split.request_log).toBe(whole.request_log);
    await expectSameAsWhole();
  });

  it("sends every id to one of the databases but the first, the same one each time, and spreads ids evenly", () => {
    expect(foldShardOf("k-anything", 1)).toBe(0);
    const counts = Array.from({ length: 9 }, () => 0);
    for (let i = 0; i < 8_000; i++) {
      const s = foldShardOf(`key-${i}`, 9);
      expect(foldShardOf(`key-${i}`, 9)).toBe(s);
      counts[s]!++;
    }
    // The first keeps the configuration: no key's rows.
    expect(counts[0]).toBe(0);
    for (const c of counts.slice(1)) expect(c).toBeGreaterThan(850);
    for (const c of counts.slice(1)) expect(c).toBeLessThan(1_150);
  });
});
