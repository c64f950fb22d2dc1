import { applyD1Migrations, createExecutionContext, createMessageBatch } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { beforeAll, describe, expect, it, vi } from "vitest";
import { PriceBook, defaultSettings, foldShardOf, type AdminEvent, type KeypoolEvent } from "../../schema";
import { createApp } from "../../gateway/app";
import { createIsolateState } from "../../gateway/worker";
import { foldDatabases } from "../../storage/fold-databases";
import { LAYOUT_RETRY_DELAY_S } from "../../storage/fold-layout";
import { findReplayJob } from "../../storage/replay-jobs";
import { handleBatch, isolateDeps } from "../../stats-consumer/handle-batch";
import { foldEvents } from "../../stats-consumer/storage/ingest-db";
import { attemptEvent } from "../fixtures/events";
import { adminToken } from "./helpers";

/**
 * The real consumer and gateway bound to several fold databases (DB, DB_2,
 * DB_3, as a deployment binds them): a pool folded into DB alone refuses to
 * fold once it is bound to three, says why in its deep health check, moves to
 * the three with a refold of its archive, and then folds and answers as one
 * database does beside it.
 */

const KEYS = Array.from({ length: 12 }, (_, i) => `k-split-${String(i).padStart(2, "0")}`);
const ALL = () => [env.SPLIT_1, env.SPLIT_2, env.SPLIT_3, env.SPLIT_REF];

/** The consumer's and gateway's bindings with the test's databases, archive and KV in place of theirs. */
const oneDatabase = () => ({ ...env, DB: env.SPLIT_1, ARCHIVE: env.SPLIT_ARCHIVE, SNAPSHOT: env.SPLIT_SNAPSHOT }) as unknown as ConsumerEnv;
const threeDatabases = () => ({ ...oneDatabase(), DB_2: env.SPLIT_2, DB_3: env.SPLIT_3 }) as unknown as ConsumerEnv;
const reference = () => ({ ...env, DB: env.SPLIT_REF, ARCHIVE: env.SPLIT_ARCHIVE, SNAPSHOT: env.SPLIT_SNAPSHOT }) as unknown as GatewayEnv;

const deps = isolateDeps();

/** Delivers events to the real consumer bound as `bindings`, as one queue batch. */
async function deliver(bindings: ConsumerEnv, events: KeypoolEvent[]) {
  const batch = createMessageBatch(
    "keypool-events",
    events.map((body, i) => ({ id: `m${i}-${crypto.randomUUID()}`, timestamp: new Date(), attempts: 1, body })),
  );
  const retried = vi.spyOn(batch, "retryAll");
  const errors: string[] = [];
  const original = console.error;
  console.error = (...args: unknown[]) => errors.push(args.join(" "));
  try {
    return { ...(await handleBatch(batch, bindings, deps)), errors, retryOptions: retried.mock.calls[0]?.[0] };
  } finally {
    console.error = original;
  }
}

/** A gateway of its own over these bindings. */
function gatewayOver(bindings: object) {
  const app = createApp({ ...createIsolateState(), probe: async () => [] });
  return async (path: string, init: RequestInit = {}) => app.fetch(new Request(`https://keypool.test${path}`, init), bindings, createExecutionContext());
}

/** Fields of an admin API answer read off the clock: two gateways answer a few milliseconds apart. */
const CLOCK_FIELDS = new Set(["generatedAt", "computedAt", "keptFrom"]);

/** An admin API answer, without what it read off the clock. */
async function adminGet(bindings: object, path: string): Promise<unknown> {
  const res = await gatewayOver(bindings)(`/admin/api${path}`, { headers: { authorization: `Bearer ${await adminToken()}` } });
  expect(res.status, path).toBe(200);
  return JSON.parse(await res.text(), (name, value) => (CLOCK_FIELDS.has(name) ? undefined : value));
}

/**
 * Traffic over the twelve keys, sent ten minutes ago (the last minute's rates,
 * which move with the clock, stay still between two reads): some requests
 * failing over to a second key, two client keys.
 */
function traffic(count: number): KeypoolEvent[] {
  const now = Date.now();
  const events: KeypoolEvent[] = [];
  for (let i = 0; i < count; i++) {
    const requestId = crypto.randomUUID();
    const ts = now - 600_000 + i * 100;
    const client = `c-split-${i % 2}`;
    const key = KEYS[i % KEYS.length]!;
    if (i % 4 === 0) {
      events.push(
        attemptEvent({
          requestId,
          ts,
          keyId: KEYS[(i + 5) % KEYS.length]!,
          upstreamId: "u-split",
          clientKeyId: client,
          final: false,
          outcome: "rate_limited",
          status: 429,
        }),
      );
      events.push(attemptEvent({ requestId, ts: ts + 1, attempt: 2, keyId: key, upstreamId: "u-split", clientKeyId: client, totalTokens: 10 + i }));
    } else
      events.push(attemptEvent({ requestId, ts, keyId: key, upstreamId: "u-split", clientKeyId: client, model: i % 3 ? "m-a" : "m-b", totalTokens: 10 + i }));
  }
  return events;
}

const adminEvent = (action: string, detail: Record<string, unknown>): AdminEvent => ({
  v: 1,
  type: "admin",
  id: crypto.randomUUID(),
  ts: Date.now(),
  actor: "admin",
  action,
  target: String(detail.jobId ?? "pool"),
  detail,
});

/** Sums of the fold's tables over some databases: what the dashboard adds up. */
async function totals(dbs: D1Database[]) {
  const parts = await Promise.all(
    dbs.map((db) =>
      db
        .prepare(
          `SELECT (SELECT COALESCE(SUM(requests), 0) FROM rollup_minute) AS requests, (SELECT COALESCE(SUM(total_tokens), 0) FROM rollup_minute) AS tokens,
                  (SELECT COUNT(*) FROM request_log) AS logged, (SELECT COUNT(*) FROM key_health) AS health, (SELECT COUNT(*) FROM audit_log) AS audit`,
        )
        .first<Record<string, number>>(),
    ),
  );
  const sum: Record<string, number> = {};
  for (const part of parts) for (const [name, value] of Object.entries(part!)) sum[name] = (sum[name] ?? 0) + Number(value);
  return sum;
}

const layoutOf = async (db: D1Database) => (await db.prepare("SELECT layout FROM fold_layout").first<{ layout: string }>())?.layout ?? null;

beforeAll(async () => {
  for (const db of ALL()) {
    await applyD1Migrations(db, env.TEST_MIGRATIONS);
    // The configuration lives in the first database; the reference holds its own copy.
    if (db === env.SPLIT_2 || db === env.SPLIT_3) continue;
    await db.batch([
      db.prepare("INSERT INTO upstreams (id, name, base_url, created_at, updated_at) VALUES ('u-split', 'split', 'http://u', 0, 0)"),
      ...KEYS.map((id, i) =>
        db
          .prepare("INSERT INTO keys (id, upstream_id, secret_enc, fingerprint, masked, created_at, updated_at) VALUES (?1, 'u-split', 'v1.a.b', ?1, ?2, 0, 0)")
          .bind(id, `sk-…${i}`),
      ),
      ...["c-split-0", "c-split-1"].map((id, i) =>
        db.prepare("INSERT INTO client_keys (id, name, hash, masked, created_at, updated_at) VALUES (?1, ?1, ?2, 'kp-…', 0, 0)").bind(id, String(i).repeat(64)),
      ),
    ]);
  }
});

describe("folding into several databases", () => {
  it("binds DB, DB_2, DB_3… in the order of their numbers", () => {
    const bindings = { DB: env.SPLIT_1, DB_10: env.SPLIT_REF, DB_3: env.SPLIT_3, DB_2: env.SPLIT_2, DBX: env.FOLD_0, DB_ARCHIVE: env.FOLD_1 };
    expect(foldDatabases(bindings)).toEqual([env.SPLIT_1, env.SPLIT_2, env.SPLIT_3, env.SPLIT_REF]);
    expect(foldDatabases({ DB: env.SPLIT_1 })).toEqual([env.SPLIT_1]);
  });

  it("refuses a changed list of databases, moves to it with a refold, then folds and answers as one database", { timeout: 60_000 }, async () => {
    // A pool folded into DB alone.
    const first = [...traffic(40), adminEvent("key.create", { name: "first" })];
    const folded = await deliver(oneDatabase(), first);
    expect(folded.errors).toEqual([]);
    expect(folded).toMatchObject({ valid: first.length, retried: false });
    await foldEvents([env.SPLIT_REF], first, defaultSettings, new PriceBook([]));
    expect(await layoutOf(env.SPLIT_1)).toBe("1/1");
    const before = await totals([env.SPLIT_1]);
    expect(before.requests).toBeGreaterThan(0);
    expect(before).toEqual(await totals([env.SPLIT_REF]));

    // Bound to three: the batch is not folded into DB (its rows stay as they were) and is retried, saying why.
    const second = traffic(30);
    const refused = await deliver(threeDatabases(), second);
    expect(refused.retried).toBe(true);
    expect(refused.errors.join("\n")).toContain("database 1 was folded as 1/1, it is bound as 1/3");
    // Retried after a while: the queue's retries outlast a refold.
    expect(refused.retryOptions).toEqual({ delaySeconds: LAYOUT_RETRY_DELAY_S });
    expect(await totals([env.SPLIT_1])).toEqual(before);
    await foldEvents([env.SPLIT_REF], second, defaultSettings, new PriceBook([]));
    // Bound as DB alone again, it would have folded: the layout is the list's, not a one-way switch.
    const health = await gatewayOver(threeDatabases())("/healthz?deep=1");
    expect(health.status).toBe(503);
    const body = (await health.json()) as {
      ok: boolean;
      folds: { ok: boolean; error: string; databases: { database: number; holds: string | null; bound: string }[] };
    };
    expect(body.folds.ok).toBe(false);
    expect(body.folds.databases[0]).toEqual({ database: 1, holds: "1/1", bound: "1/3" });
    expect(body.folds.error).toContain("refold");

    // The refold, asked for in a batch of its own traffic: the whole archive (the refused batch included) folded into three.
    const jobId = crypto.randomUUID();
    const third = [...traffic(20), adminEvent("replay.refold", { jobId })];
    const refolded = await deliver(threeDatabases(), third);
    expect(refolded.errors).toEqual([]);
    expect(refolded.retried).toBe(false);
    await foldEvents([env.SPLIT_REF], third, defaultSettings, new PriceBook([]));
    const job = await findReplayJob(env.SPLIT_1, jobId);
    expect(job).toMatchObject({ kind: "refold", status: "done", report: { databases: 3, unparseable: 0 } });
    // Every event of the three batches once (the refused one was archived before it was refused).
    expect((job!.report as { events: number }).events).toBe(first.length + second.length + third.length);
    expect([await layoutOf(env.SPLIT_1), await layoutOf(env.SPLIT_2), await layoutOf(env.SPLIT_3)]).toEqual(["1/3", "2/3", "3/3"]);
    expect(((await (await gatewayOver(threeDatabases())("/healthz?deep=1")).json()) as { folds: { ok: boolean } }).folds.ok).toBe(true);
    // The batch delivered again (a later step of it failed): the refold that ended is not run again.
    expect(await deliver(threeDatabases(), third)).toMatchObject({ retried: false, errors: [] });
    expect((await findReplayJob(env.SPLIT_1, jobId))!.startedAt).toBe(job!.startedAt);

    // Each key's rows in its own database — the second or the third: the first keeps the configuration — and the three
    // add up to the one beside them.
    for (const [i, db] of [env.SPLIT_1, env.SPLIT_2, env.SPLIT_3].entries()) {
      const { results } = await db
        .prepare("SELECT DISTINCT key_id FROM rollup_minute WHERE key_id <> '*' UNION SELECT key_id FROM key_health")
        .all<{ key_id: string }>();
      expect(results.length === 0, `database ${i + 1}`).toBe(i === 0);
      for (const r of results) expect(foldShardOf(r.key_id, 3), r.key_id).toBe(i);
    }
    expect(await totals([env.SPLIT_1, env.SPLIT_2, env.SPLIT_3])).toEqual(await totals([env.SPLIT_REF]));

    // Then it folds as usual, and a batch delivered again changes nothing.
    const fourth = traffic(24);
    expect(await deliver(threeDatabases(), fourth)).toMatchObject({ retried: false });
    expect(await deliver(threeDatabases(), fourth)).toMatchObject({ retried: false });
    await foldEvents([env.SPLIT_REF], fourth, defaultSettings, new PriceBook([]));
    expect(await totals([env.SPLIT_1, env.SPLIT_2, env.SPLIT_3])).toEqual(await totals([env.SPLIT_REF]));

    // The admin API over the three answers as over the one: the usage, the busiest keys, the keys with their state, the request log.
    for (const path of [
      "/stats/summary",
      "/stats/breakdown?by=key&bucket=hour&count=2",
      "/stats/breakdown?by=client&bucket=hour&count=2",
      "/requests?limit=20",
    ]) {
      const [three, one] = [await adminGet(threeDatabases(), path), await adminGet(reference(), path)];
      expect(JSON.stringify(three), path).toMatch(/"(requests|rows|data)":(\[\{|[1-9])/);
      expect(three, path).toEqual(one);
    }
    const keys = async (bindings: object) =>
      ((await adminGet(bindings, "/keys?limit=100")) as { data: Record<string, unknown>[] }).data.map((k) =>
        Object.fromEntries(
          ["id", "state", "coolingUntil", "lastError", "lastUsedAt", "capacity", "successRate", "requestsToday", "tokensToday"].map((f) => [f, k[f]]),
        ),
      );
    const listed = await keys(threeDatabases());
    // Every key counted today, and the keys that were failed over from show their error.
    expect(listed.every((k) => Number(k.requestsToday) > 0 && Number(k.lastUsedAt) > 0)).toBe(true);
    expect(listed.filter((k) => k.lastError !== null && Number(k.successRate) < 1).length).toBeGreaterThan(0);
    expect(listed).toEqual(await keys(reference()));

    // Bound to DB alone again, the three's rows would be read as one's: refused too.
    const back = await deliver(oneDatabase(), traffic(4));
    expect(back.retried).toBe(true);
    expect(back.errors.join("\n")).toContain("database 1 was folded as 1/3, it is bound as 1/1");
  });

  it("records the layout of a database that folded before the migration as DB alone's", async () => {
    const db = env.SPLIT_REF;
    await foldEvents([db], traffic(3), defaultSettings, new PriceBook([]));
    await db.prepare("DROP TABLE fold_layout").run();
    const migration = env.TEST_MIGRATIONS.find((m) => m.name === "0026_fold_layout.sql")!;
    await db.batch(migration.queries.map((q) => db.prepare(q)));
    expect(await layoutOf(db)).toBe("1/1");
    // Folded into as the first of two, it refuses; as DB alone, it folds.
    await expect(foldEvents([db, env.SPLIT_3], traffic(3), defaultSettings, new PriceBook([]))).rejects.toThrow(
      "database 1 was folded as 1/1, it is bound as 1/2",
    );
    await foldEvents([db], traffic(3), defaultSettings, new PriceBook([]));
  });
});
